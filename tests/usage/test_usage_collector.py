"""The process sampler on real process trees."""

from __future__ import annotations

import subprocess
import sys
import time

from mlworkshop.usage.collector import GpuSampler, ProcessSampler

TREE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time\\nx = bytearray(64 * 1024 * 1024)\\nend = time.time() + 30\\nwhile time.time() < end: pass"])
time.sleep(60)
"""


def test_whole_tree_is_sampled_and_dead_roots_are_left_out():
    proc = subprocess.Popen([sys.executable, "-c", TREE])
    try:
        sampler = ProcessSampler()
        deadline = time.monotonic() + 20
        first = None
        while time.monotonic() < deadline:
            first = sampler.sample({"s1": proc.pid}).get("s1")
            if first and first.processes == 2 and first.mem_bytes > 64 * 1024 * 1024:
                break
            time.sleep(0.2)
        assert first is not None and first.processes == 2, first
        assert first.mem_bytes > 64 * 1024 * 1024  # the child's buffer counts
        # the busy child's CPU time counts (the loop allows for a machine busy with other work)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            second = sampler.sample({"s1": proc.pid})["s1"]
            if second.cpu_total > first.cpu_total + 0.3:
                break
            time.sleep(0.2)
        assert second.cpu_total > first.cpu_total + 0.3, (first, second)
    finally:
        proc.kill()
        proc.wait()
    assert sampler.sample({"s1": proc.pid}) == {}


def test_gpu_sampler_without_nvml_is_empty_not_an_error():
    gpu = GpuSampler()
    if not gpu.available:
        assert gpu.per_pid() == {}
