"""The usage sampler's container path on a real podman container (Docker-compatible API):
cumulative CPU time and memory from one-shot stats."""

from __future__ import annotations

import time
import uuid

import pytest

from mlworkshop.usage.collector import ContainerSampler

from .images import EngineUnavailable, ensure_base

pytestmark = pytest.mark.containers


def test_container_stats_cpu_and_memory(engine):
    import docker

    try:
        image = ensure_base(print)
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    client = docker.DockerClient(base_url=engine, version="auto", timeout=120)
    name = "mlw-usage-stats-" + uuid.uuid4().hex[:8]
    # a busy process holding 64 MiB
    container = client.containers.run(
        image,
        ["python3", "-c", "x = bytearray(64 * 2**20)\nwhile True: pass"],
        name=name,
        detach=True,
    )
    try:
        sampler = ContainerSampler(client)
        deadline = time.monotonic() + 60
        first = None
        while time.monotonic() < deadline:
            first = sampler.sample({"s": container.id}).get("s")
            if first and first.mem_bytes > 60 * 2**20:
                break
            time.sleep(0.5)
        assert first is not None and first.mem_bytes > 60 * 2**20, first
        deadline = time.monotonic() + 60
        second = first
        while time.monotonic() < deadline and second.cpu_total < first.cpu_total + 0.5:
            time.sleep(0.5)
            second = sampler.sample({"s": container.id})["s"]
        assert second.cpu_total >= first.cpu_total + 0.5, (first, second)
    finally:
        container.remove(force=True)
        client.close()
    assert sampler.sample({"s": container.id}) == {}  # gone: left out, not an error
