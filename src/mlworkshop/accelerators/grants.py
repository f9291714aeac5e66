"""One call for the spawner: turn a validated profile into devices, environment and groups.

Keeps the mode logic (shared: everything, nothing recorded; exclusive: allocate, or hide the
devices from a CPU-only server) in one place, so the three backends cannot drift apart.
The hub calls `grant()` in its pre-spawn hook, `allocator.release(user, server)` when the server
stops (and when the start fails after the grant), and `allocator.reconcile(...)` at hub start and
periodically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .allocator import Allocator, Limit
from .exposure import local_env, local_groups
from .inventory import Device
from .profiles import Profile


@dataclass(frozen=True)
class Grant:
    profile: Profile
    devices: list[Device]  # what the server may use (shared mode: all of them)
    env: dict[str, str]  # local backend: CUDA_VISIBLE_DEVICES / ASCEND_RT_VISIBLE_DEVICES ...
    groups: list[str] = field(default_factory=list)  # local backend: system groups to join
    allocated: bool = False  # True when rows were written: release them when the server stops


def grant(
    profile: Profile,
    username: str,
    server_name: str,
    inventory: Sequence[Device],
    allocator: Allocator | None,
    limit: Limit | None,
    device_groups: Mapping[str, Sequence[str]],
) -> Grant:
    """Devices for a server about to start. Raises NoDeviceFree / OverLimit (nothing written).

    `allocator` is None in shared mode. A CPU-only profile in exclusive mode drops whatever this
    server still held (a previous GPU start) and hides the host's devices from it.
    """
    if profile.shared or allocator is None:
        devices = list(inventory) if profile.shared else []
        return Grant(
            profile, devices, local_env(devices, inventory), local_groups(devices, device_groups)
        )
    if profile.count == 0 or profile.kind is None:
        allocator.release(username, server_name)
        return Grant(profile, [], local_env([], inventory), [])
    devices = allocator.allocate(username, server_name, profile.kind, profile.count, limit=limit)
    return Grant(
        profile, devices, local_env(devices, inventory), local_groups(devices, device_groups), True
    )
