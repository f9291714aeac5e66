"""Per-user cgroups (mlworkshop.cgroups) for the spawner lifecycle (hub/lifecycle.py): made with
the user's limits before the server starts, emptied and removed when it stops (before its devices
are handed on). Backends whose engine makes no group of its own ask for one (the local backend:
`cgroup_limits()`); containers get theirs from the engine.

The limits are the ones the usage API reports for the user (accelerators.profiles through
`server_resources`, from the same device count the usage records hold), plus
spawner.local.max_processes. A hub that is not root, or a host without usable cgroups, logs one
clear warning and starts servers without them, as before.
"""

from __future__ import annotations

import asyncio
import os

from .. import cgroups
from ..accelerators.grants import Grant
from ..accelerators.profiles import server_resources

_warned: set[str] = set()


def _warn_once(log, key: str, message: str, *args) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


def cgroup_limits(grant: Grant | None, profiles_cfg, max_processes: int) -> cgroups.Limits:
    """The server's limits: its spawn profile's CPUs and memory, as the usage API reports them
    (accelerators.profiles.server_resources, from the device count the usage record holds), and
    spawner.local.max_processes."""
    n_devices = len(grant.devices) if grant and grant.allocated else 0  # as the usage record counts
    shared = bool(grant and grant.profile.shared)  # recorded as the profile "shared"
    cpu, memory = server_resources(profiles_cfg, n_devices, shared)
    return cgroups.Limits(memory_bytes=memory, cpu_cores=cpu, pids=max_processes)


class UserCgroups:
    """Makes and removes an account's group; one per spawner (it logs as the spawner does)."""

    def __init__(self, log):
        self.log = log

    async def make(self, user: str, account: str | None, limits: cgroups.Limits) -> list[str]:
        """Before the server's process exists: its account's group, with these limits. Returns
        the folders the server's process joins (none: no cgroup, with one warning per hub)."""
        if account is None or os.geteuid() != 0:
            _warn_once(
                self.log,
                "root",
                "The hub is not running as root: users' servers get no cgroup, so "
                "nothing but their good manners limits their memory, CPU and processes.",
            )
            return []
        hierarchy = cgroups.detect()
        if hierarchy is None:
            _warn_once(
                self.log,
                "none",
                "No cgroup controllers are mounted (looked in /proc/self/mounts): "
                "users' memory, CPU and process limits are NOT enforced. Mount the memory, cpu "
                "and pids controllers (cgroup v1) or a cgroup2 tree with them enabled.",
            )
            return []
        missing = [
            c for c in cgroups.V2_CONTROLLERS if hierarchy.version == 1 and c not in hierarchy.roots
        ]
        if missing:
            _warn_once(
                self.log,
                "missing",
                "cgroup v1 controllers %s are not mounted: those limits are not enforced.",
                ", ".join(missing),
            )
        try:
            dirs = await asyncio.to_thread(cgroups.ensure, hierarchy, account, limits)
        except cgroups.CgroupError as exc:
            self.log.error("No cgroup for %s: %s", user, exc)
            raise RuntimeError(
                f"Your server could not be given its memory and CPU limits ({exc}). Ask an "
                "administrator to check the hub's log."
            ) from None
        self.log.info(
            "%s's server runs in cgroup %s/%s (memory %s, CPUs %s, processes %s)",
            user,
            cgroups.PARENT,
            account,
            "unlimited"
            if limits.memory_bytes is None
            else cgroups.describe_bytes(limits.memory_bytes),
            "unlimited" if limits.cpu_cores is None else f"{limits.cpu_cores:g}",
            limits.pids,
        )
        return [str(d) for d in dirs]

    async def remove(self, user: str, account: str | None) -> None:
        """After the server stopped: kill what it left behind and remove the group."""
        hierarchy = cgroups.detect() if account and os.geteuid() == 0 else None
        if hierarchy is None:
            return
        kills = cgroups.oom_kills(hierarchy, account)
        if kills:
            self.log.warning(
                "%s's server: the out-of-memory killer stopped %d of its processes", user, kills
            )
        try:
            await asyncio.to_thread(cgroups.remove, hierarchy, account)
        except cgroups.CgroupError as exc:
            self.log.warning("%s's cgroup was not removed: %s", user, exc)
