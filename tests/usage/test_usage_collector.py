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


def test_a_killed_server_nobody_reaped_is_dead_not_sampled():
    """A server killed while its parent is gone stays in the process table as a zombie until
    someone reaps it, and an init that does not reap (this VM's PID 1, some containers') never
    does: it is dead, and a sample of it would move its session's last-seen time past its
    death (the time a session lost with the hub is closed at)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        sampler = ProcessSampler()
        assert "s1" in sampler.sample({"s1": proc.pid})
        proc.kill()  # not reaped: the zombie stays until proc.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _state(proc.pid) != "Z":
            time.sleep(0.05)
        assert _state(proc.pid) == "Z"
        assert sampler.sample({"s1": proc.pid}) == {}
    finally:
        proc.kill()
        proc.wait()


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()[0]


def test_gpu_sampler_without_nvml_is_empty_not_an_error():
    gpu = GpuSampler()
    if not gpu.available:
        assert gpu.per_pid() == {}


# uses `seconds` of CPU, however long that takes on a loaded machine, then sleeps `linger`
BUSY = "import time\nwhile time.process_time() < {seconds}: pass\ntime.sleep({linger})"


def test_processes_of_a_servers_account_outside_its_tree_count_and_keep_their_time():
    """A forked kernel is the fork server's child, not the server's: it is found by its owner,
    and the CPU time it used is kept after it exits (nobody reaps it into the server's)."""
    import os
    import pwd
    import secrets

    import pytest

    if os.geteuid() != 0:
        pytest.skip("needs root: the processes run as a throwaway account")
    name = f"mlwc{secrets.token_hex(3)}"
    subprocess.run(["useradd", "-M", "-d", "/nonexistent", name], check=True)
    procs = []
    try:
        uid = pwd.getpwnam(name).pw_uid

        def as_account(code):
            return subprocess.Popen(
                [sys.executable, "-c", code],
                user=uid,
                group=pwd.getpwnam(name).pw_gid,
                start_new_session=True,
            )

        server = as_account("import time; time.sleep(60)")
        outsider = as_account(BUSY.format(seconds=1.0, linger=0))  # not the server's descendant
        procs += [server, outsider]
        sampler = ProcessSampler()
        seen = sampler.sample({"s1": server.pid})["s1"]
        assert seen.processes == 2, seen
        highest = seen.cpu_total
        while outsider.poll() is None:
            reading = sampler.sample({"s1": server.pid})["s1"]
            assert reading.cpu_total >= highest, "CPU time went backwards"
            highest = reading.cpu_total
            time.sleep(0.1)
        after = sampler.sample({"s1": server.pid})["s1"]
        assert after.processes == 1
        assert after.cpu_total >= highest > 0.3, (highest, after)  # the outsider's time is kept
        # two servers of one account: nobody can tell whose an outsider is, so it is nobody's
        second = as_account("import time; time.sleep(60)")
        stray = as_account("import time; time.sleep(60)")
        procs += [second, stray]
        time.sleep(0.3)
        both = sampler.sample({"s1": server.pid, "s2": second.pid})
        assert both["s1"].processes == 1 and both["s2"].processes == 1, both
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        subprocess.run(["userdel", name], capture_output=True)
