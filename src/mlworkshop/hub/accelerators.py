"""The hub's side of accelerators: one inventory and allocator per hub process, and the spawner
hooks (options form, grant at start, release at stop) every backend shares.

The pure logic lives in mlworkshop.accelerators; this module only connects it to JupyterHub's
spawner life cycle.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sqlalchemy.orm import object_session
from tornado import web
from traitlets import default
from traitlets.config import LoggingConfigurable

from ..accelerators import (
    Allocator,
    Grant,
    InvalidChoice,
    Inventory,
    NoDeviceFree,
    OverLimit,
    detect,
    effective_limit,
    grant,
    options_from_form,
    profiles_for,
    render_options_form,
    validate_choice,
    why_not_offered,
)
from ..config import MLWorkshopConfig, load_config
from ..site import Site


def refuse(message: str, status: int = 409) -> web.HTTPError:
    """An error whose message reaches the student as it is: in the API response, on the spawn
    page and in the progress stream. JupyterHub renames a failed start's reason to "error" and
    would then show "HTTP 409: error (...)", or on Home → Start My Server its generic "Failed to
    start your server on the last attempt"; `jupyterhub_message` is what it shows instead."""
    error = web.HTTPError(status, message, reason="Spawn refused")
    error.jupyterhub_message = message
    return error


@dataclass(frozen=True)
class HubAccelerators:
    cfg: MLWorkshopConfig
    inventory: Inventory
    allocator: Allocator | None  # None in shared mode


@lru_cache(maxsize=8)
def hub_accelerators(site_root: str) -> HubAccelerators:
    """Detected once per hub process (nvidia-smi / npu-smi are slow and devices do not change)."""
    site = Site(Path(site_root))
    cfg = load_config(site.root)
    inventory = detect(cfg.accelerators)
    allocator = None
    if cfg.accelerators.mode == "exclusive" and inventory.devices:
        allocator = Allocator(site.db_url(cfg), inventory.devices, cfg.accelerators.slots_per_device)
    return HubAccelerators(cfg, inventory, allocator)


class AcceleratorHooks(LoggingConfigurable):
    """Mixed into every backend's spawner (it needs `user`, `name`, `user_options`, `site_root`)."""

    accelerator_grant: Grant | None = None

    @property
    def _acc(self) -> HubAccelerators:
        return hub_accelerators(self.site_root)

    def _groups(self) -> list[str]:
        return [group.name for group in self.user.groups]

    def _profiles(self, only_free: bool):
        acc = self._acc
        return profiles_for(self.user.name, self._groups(), bool(self.user.admin), acc.cfg, acc.inventory.devices,
                            acc.allocator, server_name=self.name, only_free=only_free)

    @default("apply_user_options")
    def _default_apply_user_options(self):
        return lambda spawner, user_options: spawner.check_user_options(user_options)

    async def check_user_options(self, user_options: dict) -> None:
        """Refuse a crafted or stale choice with 400 before anything starts."""
        allowed = await asyncio.to_thread(self._profiles, False)
        try:
            validate_choice((user_options or {}).get("profile"), allowed)
        except InvalidChoice as exc:
            self._forget_choice(str(exc))
            raise refuse(str(exc), 400) from None

    def _forget_choice(self, why: str) -> None:
        """Drop the saved profile choice. JupyterHub saves every request's options and re-uses
        them whenever a server is started without a form (Home → Start My Server with nothing
        left to choose, an API call without a body): a refused or no longer allowed choice would
        be refused again on every start. Without it the default (CPU only) is started."""
        orm_spawner = getattr(self, "orm_spawner", None)
        saved = dict(orm_spawner.user_options or {}) if orm_spawner is not None else {}
        if saved.pop("profile", None) is None:
            return
        self.log.info("Forgetting %s's saved server option: %s", self._log_name, why)
        orm_spawner.user_options = saved
        session = object_session(orm_spawner)  # the hub's own (Spawner.db is deprecated)
        if session is not None:
            session.commit()

    def _offer(self) -> tuple[list, list[str]]:
        """The profiles to show now and, for each kind of device the user may use but that is
        all taken, the sentence saying who holds it."""
        offered = self._profiles(True)
        allocator = self._acc.allocator
        return offered, why_not_offered(self._profiles(False), offered, allocator) if allocator else []

    async def get_options_form(self) -> str:
        await self._release_stale()
        profiles, notes = await asyncio.to_thread(self._offer)
        orm_spawner = getattr(self, "orm_spawner", None)
        saved = (orm_spawner.user_options or {}).get("profile") if orm_spawner is not None else None
        if saved and saved not in {p.slug for p in profiles}:
            self._forget_choice(f"{str(saved)[:40]!r} is not offered now")
        return render_options_form(profiles, notes)

    def options_from_form(self, formdata):
        return options_from_form(formdata)

    async def _release_stale(self) -> None:
        """Free devices held by servers that are no longer running (crashed, or stopped while the
        hub was down), so they can be handed out again."""
        allocator = self._acc.allocator
        if allocator is None:
            return
        users = self.user.settings.get("users")
        holders = {(h.username, h.server_name) for usage in allocator.usage() for h in usage.holders}
        alive = set()
        for username, server_name in holders:
            if (username, server_name) == (self.user.name, self.name):
                continue  # this server is (re)starting: grant() replaces its holding
            try:
                spawner = users[username].spawners.get(server_name) if users is not None else None
            except KeyError:
                spawner = None
            if spawner is not None and spawner.active and await spawner.poll() is None:
                alive.add((username, server_name))
        freed = await asyncio.to_thread(
            allocator.reconcile, lambda u, s: (u, s) in alive or (u, s) == (self.user.name, self.name))
        for username, server_name, devices in freed:
            self.log.info("Released %s held by %s's stopped server %r", devices, username, server_name)

    async def grant_accelerators(self) -> Grant:
        """Validate the chosen profile on the server side and take its devices."""
        acc = self._acc
        if not acc.inventory.devices:  # nothing to hand out: no thread or database on the start path
            try:
                profile = validate_choice((self.user_options or {}).get("profile"), self._profiles(False))
            except InvalidChoice as exc:
                self._forget_choice(str(exc))
                raise refuse(str(exc), 400) from None
            self.accelerator_grant = grant(profile, self.user.name, self.name, [], None, None,
                                           acc.cfg.accelerators.device_groups)
            return self.accelerator_grant
        await self._release_stale()
        try:
            allowed = await asyncio.to_thread(self._profiles, False)
            profile = validate_choice((self.user_options or {}).get("profile"), allowed)
            limit = effective_limit(self.user.name, self._groups(), bool(self.user.admin), acc.cfg.accelerators)
            self.accelerator_grant = await asyncio.to_thread(
                grant, profile, self.user.name, self.name, acc.inventory.devices, acc.allocator, limit,
                acc.cfg.accelerators.device_groups,
            )
        except (InvalidChoice, NoDeviceFree, OverLimit) as exc:
            self._forget_choice(str(exc))
            raise refuse(str(exc), 400 if isinstance(exc, InvalidChoice) else 409) from None
        if self.accelerator_grant.devices:
            self.log.info("%s gets %s", self.user.name, [f"{d.kind}:{d.index}" for d in self.accelerator_grant.devices])
        return self.accelerator_grant

    async def release_accelerators(self) -> None:
        allocator = self._acc.allocator
        if allocator is not None:
            await asyncio.to_thread(allocator.release, self.user.name, self.name)
        self.accelerator_grant = None

    def accelerator_env(self) -> dict[str, str]:
        return dict(self.accelerator_grant.env) if self.accelerator_grant else {}
