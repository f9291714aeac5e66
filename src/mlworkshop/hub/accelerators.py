"""The hub's side of accelerators: one `HubAccelerators` per hub process (inventory, allocator,
the profiles a user may start, grants and releases) that the spawner lifecycle (hub/lifecycle.py)
calls, and `StaleDevices`, the hub-level task that frees devices of servers that no longer run.

The pure logic lives in mlworkshop.accelerators; this module holds the hub process's state. Its
settings are the spawner's traits (`accelerators`, `hub_db_url`, set by hub/configure.py), never a
second read of mlworkshop.yaml, so `jupyterhub_config.d/` can change them like any other option.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tornado import web

from ..accelerators import (
    Allocator,
    Grant,
    Inventory,
    NoDeviceFree,
    Profile,
    detect,
    effective_limit,
    grant,
    profiles_for,
    why_not_offered,
)
from ..config.accelerators import AcceleratorsConfig


def refuse(message: str, status: int = 409) -> web.HTTPError:
    """An error whose message reaches the student as it is: in the API response, on the spawn
    page and in the progress stream. JupyterHub renames a failed start's reason to "error" and
    would then show "HTTP 409: error (...)", or on Home → Start My Server its generic "Failed to
    start your server on the last attempt"; `jupyterhub_message` is what it shows instead."""
    error = web.HTTPError(status, message, reason="Spawn refused")
    error.jupyterhub_message = message
    return error


@dataclass(frozen=True)
class Who:
    """The server a request is about: whose, in which groups, and its name ("" the default)."""

    user: str
    groups: tuple[str, ...]
    admin: bool
    server: str = ""


class HubAccelerators:
    """Devices of this hub process: detected once (nvidia-smi / npu-smi are slow and devices do
    not change), handed out by the allocator in exclusive mode. Blocking methods: call them in a
    thread when they touch the allocator's database."""

    def __init__(self, cfg: AcceleratorsConfig, db_url: str):
        self.cfg = cfg
        self.inventory: Inventory = detect(cfg)
        self.allocator: Allocator | None = None  # None in shared mode (nothing is handed out)
        if cfg.mode == "exclusive" and self.inventory.devices:
            self.allocator = Allocator(db_url, self.inventory.devices, cfg.slots_per_device)
        self.stale: StaleDevices | None = None

    @property
    def devices(self):
        return self.inventory.devices

    def profiles(self, who: Who, only_free: bool) -> list[Profile]:
        """What `who` may start: now (only_free) or at all (to validate a choice, so a busy
        device gets the allocator's "in use since" message rather than a bare refusal)."""
        return profiles_for(
            who.user,
            list(who.groups),
            who.admin,
            self.cfg,
            self.devices,
            self.allocator,
            server_name=who.server,
            only_free=only_free,
        )

    def not_offered(self, who: Who, offered: list[Profile]) -> list[str]:
        """For each kind `who` may use but of which every device is taken: who holds them."""
        if self.allocator is None:
            return []
        return why_not_offered(self.profiles(who, False), offered, self.allocator)

    def grant(self, who: Who, profile: Profile) -> Grant:
        """Devices for a validated profile. Raises NoDeviceFree / OverLimit (nothing written)."""
        limit = (
            effective_limit(who.user, list(who.groups), who.admin, self.cfg)
            if self.allocator
            else None
        )
        return grant(
            profile,
            who.user,
            who.server,
            self.devices,
            self.allocator,
            limit,
            self.cfg.device_groups,
        )

    def release(self, who: Who) -> None:
        if self.allocator is not None:
            self.allocator.release(who.user, who.server)


def settings_key(settings: Mapping[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True, default=str)


@lru_cache(maxsize=8)
def hub_accelerators(settings: str, db_url: str) -> HubAccelerators:
    """One per hub process and settings (the spawner's `accelerators` trait, as JSON)."""
    return HubAccelerators(AcceleratorsConfig.model_validate(json.loads(settings)), db_url)


Alive = Callable[[str, str], "asyncio.Future[bool] | Any"]


class StaleDevices:
    """Hub-level: frees the devices of servers that are no longer running (crashed, stopped
    while the hub was down, their user deleted), so they can be handed out again. Runs every
    `every` seconds from the first spawner the hub process makes, and at once when a grant or the
    spawn form finds a kind all taken (a server killed a second ago must not keep its device).

    Whether a server runs is the hub's to say: `alive(user, server)` (hub/lifecycle.py asks the
    hub's own spawner objects). Freeing is the allocator's `reconcile`, which re-checks rows under
    its lock, so a server that restarted meanwhile keeps its new devices."""

    def __init__(
        self,
        allocator: Allocator,
        alive: Callable[[str, str], Any],
        every: float,
        log: logging.Logger | logging.LoggerAdapter,
    ):
        self.allocator = allocator
        self.alive = alive
        self.every = every
        self.log = log
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    def start(self) -> None:
        """The periodic task, once per hub process (needs the hub's running event loop)."""
        if self._task is None and self.every > 0:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self.release()
            except Exception as exc:  # noqa: BLE001 - the next round tries again
                self.log.warning("Releasing devices of stopped servers failed: %s", exc)
            await asyncio.sleep(self.every)

    async def release(self) -> list[tuple[str, str, list]]:
        """One round: holders that do not run lose their devices. Returns what was freed."""
        async with self._lock:
            usage = await asyncio.to_thread(self.allocator.usage)
            holders = {(h.username, h.server_name) for u in usage for h in u.holders}
            alive = set()
            for username, server_name in holders:
                if await self.alive(username, server_name):
                    alive.add((username, server_name))
            freed = await asyncio.to_thread(self.allocator.reconcile, alive)
        for username, server_name, devices in freed:
            self.log.info(
                "Released %s held by %s's stopped server %r", devices, username, server_name
            )
        return freed


__all__ = [
    "HubAccelerators",
    "NoDeviceFree",
    "StaleDevices",
    "Who",
    "hub_accelerators",
    "refuse",
    "settings_key",
]
