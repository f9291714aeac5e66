"""The local backend's side of per-user cgroups (mlworkshop.cgroups): made with the user's limits
before the server starts, emptied and removed when it stops.

The limits are the ones the usage API reports for the user (accelerators.profiles through
`server_resources`, from the same device count the usage records hold), plus
spawner.local.max_processes. A hub that is not root, or a host without usable cgroups, logs one
clear warning and starts servers without them, as before.
"""

from __future__ import annotations

import asyncio
import os

from traitlets import Integer
from traitlets.config import LoggingConfigurable

from .. import cgroups
from ..accelerators.profiles import server_resources

_warned: set[str] = set()


def _warn_once(log, key: str, message: str, *args) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


class CgroupHooks(LoggingConfigurable):
    """Mixed into LocalSpawner (it needs `user`, `user_prefix`, `runs_as_root`, `accelerator_grant`, `_acc`)."""

    max_processes = Integer(
        2048, help="pids limit of each user's cgroup: processes and threads of their server and kernels."
    ).tag(config=True)

    cgroup_dirs: list[str] = []  # what the server's process joins (empty: no cgroup)

    def cgroup_limits(self) -> cgroups.Limits:
        grant = self.accelerator_grant
        n_devices = len(grant.devices) if grant and grant.allocated else 0  # as the usage record counts
        shared = bool(grant and grant.profile.shared)  # recorded as the profile "shared"
        cpu, memory = server_resources(self._acc.cfg.accelerators.profiles, n_devices, shared)
        return cgroups.Limits(memory_bytes=memory, cpu_cores=cpu, pids=self.max_processes)

    def _cgroup_account(self) -> str | None:
        """The server's system account, as prepare_user_workspace names it (also after a hub
        restart, when this spawner has not prepared a workspace itself)."""
        return self.user_prefix + self.user.name if self.runs_as_root else None

    async def prepare_cgroup(self) -> list[str]:
        """Before the server's process exists: its account's group, with this server's limits."""
        self.cgroup_dirs = []
        account = self._cgroup_account()
        if account is None or os.geteuid() != 0:
            _warn_once(self.log, "root", "The hub is not running as root: users' servers get no cgroup, so "
                       "nothing but their good manners limits their memory, CPU and processes.")
            return []
        hierarchy = cgroups.detect()
        if hierarchy is None:
            _warn_once(self.log, "none", "No cgroup controllers are mounted (looked in /proc/self/mounts): "
                       "users' memory, CPU and process limits are NOT enforced. Mount the memory, cpu "
                       "and pids controllers (cgroup v1) or a cgroup2 tree with them enabled.")
            return []
        missing = [c for c in cgroups.V2_CONTROLLERS if hierarchy.version == 1 and c not in hierarchy.roots]
        if missing:
            _warn_once(self.log, "missing", "cgroup v1 controllers %s are not mounted: those limits are not "
                       "enforced.", ", ".join(missing))
        limits = self.cgroup_limits()
        try:
            dirs = await asyncio.to_thread(cgroups.ensure, hierarchy, account, limits)
        except cgroups.CgroupError as exc:
            self.log.error("No cgroup for %s: %s", self.user.name, exc)
            raise RuntimeError(
                f"Your server could not be given its memory and CPU limits ({exc}). Ask an "
                "administrator to check the hub's log."
            ) from None
        self.log.info("%s's server runs in cgroup %s/%s (memory %s, CPUs %s, processes %s)", self.user.name,
                      cgroups.PARENT, account,
                      "unlimited" if limits.memory_bytes is None else cgroups.describe_bytes(limits.memory_bytes),
                      "unlimited" if limits.cpu_cores is None else f"{limits.cpu_cores:g}", limits.pids)
        self.cgroup_dirs = [str(d) for d in dirs]
        return self.cgroup_dirs

    async def stop(self, now=False):
        """The backend's stop, then the group's leftovers: before the devices are handed on."""
        try:
            await super().stop(now=now)
        finally:
            await self.release_cgroup()

    async def release_cgroup(self) -> None:
        """After the server stopped: kill what it left behind and remove the group."""
        account = self._cgroup_account()
        hierarchy = cgroups.detect() if account and os.geteuid() == 0 else None
        if hierarchy is None:
            return
        kills = cgroups.oom_kills(hierarchy, account)
        if kills:
            self.log.warning("%s's server: the out-of-memory killer stopped %d of its processes", self.user.name,
                             kills)
        try:
            await asyncio.to_thread(cgroups.remove, hierarchy, account)
        except cgroups.CgroupError as exc:
            self.log.warning("%s's cgroup was not removed: %s", self.user.name, exc)
        self.cgroup_dirs = []
