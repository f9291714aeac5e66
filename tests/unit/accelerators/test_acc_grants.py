"""grant(): the spawn-time step from a chosen profile to devices, environment and groups."""

from __future__ import annotations

import pytest

from mlworkshop.accelerators import (
    Allocator,
    Device,
    InvalidChoice,
    NoDeviceFree,
    effective_limit,
    grant,
    profiles_for,
    validate_choice,
)
from mlworkshop.config.accelerators import AcceleratorsConfig

GPUS = [Device("nvidia", i, f"GPU-{i}", "Tesla T4", 15360) for i in range(2)]


@pytest.fixture
def allocator(tmp_path):
    alloc = Allocator(f"sqlite:///{tmp_path / 'hub.sqlite'}", GPUS)
    yield alloc
    alloc.close()


def _spawn(cfg, allocator, user, server, slug):
    """What the hub's pre-spawn hook does, in order."""
    allowed = profiles_for(
        user, [], False, cfg, GPUS, allocator, server_name=server, only_free=False
    )
    profile = validate_choice(slug, allowed)
    limit = effective_limit(user, [], False, cfg)
    return grant(
        profile,
        user,
        server,
        GPUS,
        allocator if cfg.mode == "exclusive" else None,
        limit,
        cfg.device_groups,
    )


def test_exclusive_gpu_grant(allocator):
    cfg = AcceleratorsConfig(mode="exclusive")
    g = _spawn(cfg, allocator, "alice", "", "gpu-1")
    assert g.allocated and [d.index for d in g.devices] == [0]
    assert g.env["CUDA_VISIBLE_DEVICES"] == "0" and g.groups == ["video", "render"]
    assert g.profile.cpu_limit == 4 and g.profile.mem_limit == "16G"
    g2 = _spawn(cfg, allocator, "bob", "", "gpu-1")
    assert g2.env["CUDA_VISIBLE_DEVICES"] == "1"
    with pytest.raises(NoDeviceFree, match="Both GPUs are in use"):
        _spawn(cfg, allocator, "carol", "", "gpu-1")
    with pytest.raises(InvalidChoice):
        _spawn(
            cfg, allocator, "carol", "", "gpu-2"
        )  # over carol's limit of 1: refused before the allocator


def test_cpu_only_server_gives_back_and_hides(allocator):
    cfg = AcceleratorsConfig(mode="exclusive")
    _spawn(cfg, allocator, "alice", "", "gpu-1")
    g = _spawn(cfg, allocator, "alice", "", "cpu")  # the same server restarted CPU-only
    assert not g.allocated and g.devices == [] and g.groups == []
    assert g.env["CUDA_VISIBLE_DEVICES"] == "" and allocator.free_count("nvidia") == 2


def test_shared_mode_grants_everything_and_records_nothing(allocator):
    cfg = AcceleratorsConfig(mode="shared")
    g = _spawn(cfg, allocator, "alice", "", None)
    assert g.profile.slug == "shared" and not g.allocated
    assert g.env["CUDA_VISIBLE_DEVICES"] == "0,1" and g.groups == ["video", "render"]
    assert allocator.free_count("nvidia") == 2
