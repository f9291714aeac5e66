"""The local backend's cgroup limits (hub.cgroup_hooks) are the usage API's: the spawn profile's
CPUs and memory from the same rule (accelerators.profiles.server_resources) and the same device
count the usage record holds, plus spawner.local.max_processes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mlworkshop.accelerators.grants import Grant
from mlworkshop.accelerators.profiles import Profile, server_resources
from mlworkshop.cgroups import Limits
from mlworkshop.config.model import MLWorkshopConfig
from mlworkshop.hub.cgroup_hooks import cgroup_limits

GIB = 2**30
CPU_ONLY = Profile("cpu", "CPU only", None, 0, 2, "4G")
TWO_GPUS = Profile("gpu-2", "2 × GPU", "nvidia", 2, 8, "32G")
SHARED = Profile("shared", "Shared: 2 × GPU", None, 0, 4, "16G", shared=True)
DEVICE = SimpleNamespace(kind="nvidia", index=0)


@pytest.mark.parametrize(
    "grant, n_devices, profile, limits",
    [
        (Grant(CPU_ONLY, [], {}), 0, "cpu", Limits(4 * GIB, 2, 2048)),
        (
            Grant(TWO_GPUS, [DEVICE, DEVICE], {}, allocated=True),
            2,
            "gpu-2",
            Limits(32 * GIB, 8, 2048),
        ),
        (
            Grant(SHARED, [DEVICE, DEVICE], {}),
            0,
            "shared",
            Limits(16 * GIB, 4, 2048),
        ),  # shared: nothing allocated
    ],
    ids=["cpu-only", "two-gpus", "shared"],
)
def test_cgroup_limits_are_what_the_usage_api_reports(grant, n_devices, profile, limits):
    cfg = MLWorkshopConfig()
    assert cgroup_limits(grant, cfg.accelerators.profiles, 2048) == limits
    # the usage API: server_resources(profiles, session.n_devices, session.profile == "shared")
    cpu, memory = server_resources(cfg.accelerators.profiles, n_devices, profile == "shared")
    assert (cpu, memory) == (limits.cpu_cores, limits.memory_bytes)
    # and what the spawn page offered for that profile
    assert (grant.profile.cpu_limit, grant.profile.mem_limit) == (cpu, f"{memory // GIB}G")


def test_cgroup_limits_unlimited_profile_and_own_pids_limit():
    cfg = MLWorkshopConfig()
    cfg.accelerators.profiles.cpu.mem_limit = None
    cfg.accelerators.profiles.cpu.cpu_limit = None
    assert cgroup_limits(None, cfg.accelerators.profiles, 100) == Limits(None, None, 100)
