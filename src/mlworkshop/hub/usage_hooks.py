"""Usage accounting for the spawner lifecycle (hub/lifecycle.py): one `HubUsage` per hub process
that the lifecycle calls at each step, plus the hub pages' budget announcement.

The lifecycle calls `opened()` once the server is up and `closed(reason)` once it is gone: the
session row is written at the moment each happens, and a last sample before a server's processes
go (`last_sample()`). None of them ever raises into the spawn/stop path (a broken usage store must
not stop a class): the lifecycle logs failures. At spawn, `spawn_refusal()` refuses (403, with the
remaining budget) and `over_budget()` hides the accelerator profiles the budget no longer allows.

How a stop is named:
- `stopped`: the server ran until the hub stopped it (user, admin, culler);
- `quota`: the usage service stopped it at the limit (it marks the row before asking the hub);
- `died`: the hub saw this server run (or started it) and then found it dead;
- `lost`: it was already dead when a (re)started hub first looked at it -- it died while the
  hub was down; its end is the last moment it was known to run (its last sample).

Settings are the spawner's traits (`usage`, `usage_db_url`, set by hub/configure.py), never a
second read of mlworkshop.yaml.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..config.usage import UsageConfig
from ..i18n import _, current_language
from .accelerators import Who


class UsageUnavailable(Exception):
    pass


class HubUsage:
    """The usage store as this hub process sees it (blocking methods: call them in a thread)."""

    def __init__(self, cfg: UsageConfig, url: str):
        self.cfg = cfg
        self.url = url
        self._store: Any = None
        self._failed_at = 0.0

    @property
    def enabled(self) -> bool:
        return self.cfg.enabled

    def store(self):
        """The store, opened on first use; None (and retried after 10 s) while the DB is down."""
        if self._store is not None:
            return self._store
        if self._failed_at and time.monotonic() - self._failed_at < 10:
            return None
        from ..usage.store import UsageStore

        try:
            self._store = UsageStore(self.url)
        except Exception:
            self._failed_at = time.monotonic()
            raise
        return self._store

    def _open_store(self):
        store = self.store()
        if store is None:
            raise UsageUnavailable("the usage database did not answer a moment ago")
        return store

    # --- the session ------------------------------------------------------------------------
    def opened(self, who: Who, **facts) -> None:
        self._open_store().open_session(who.user, who.server, **facts)

    def last_sample(self, who: Who, sample) -> None:
        self._open_store().last_sample(who.user, who.server, sample)

    def closed(self, who: Who, reason: str):
        return self._open_store().close_session(who.user, who.server, reason)

    # --- quotas at spawn --------------------------------------------------------------------
    def limits_and_use(self, who: Who):
        from ..usage.quotas import Used, current_use, effective_limits

        store = self._open_store()
        limits = effective_limits(
            who.user, list(who.groups), who.admin, self.cfg.quotas, store.overrides()
        )
        if limits.unlimited:
            return limits, Used()
        used = current_use(store, who.user)
        mine = [s for s in store.open_sessions(who.user) if s.server_name == who.server]
        if mine:  # this very server (a restart): do not count it against itself
            used = Used(
                used.gpu_hours,
                used.cpu_hours,
                max(0, used.servers - len(mine)),
                max(0, used.devices - sum(s.n_devices for s in mine)),
            )
        return limits, used

    def spawn_refusal(self, who: Who, device_count: Callable[[], int]) -> str | None:
        """Why `who`'s budget does not allow a start with `device_count()` devices (asked only
        when a budget applies), or None. Raises when the usage data cannot be read (the caller
        applies failover_open)."""
        from ..usage.quotas import spawn_refusal

        limits, used = self.limits_and_use(who)
        return None if limits.unlimited else spawn_refusal(limits, used, device_count())

    def over_budget(self, who: Who, profiles: list) -> tuple[list, str | None]:
        """The profiles the budget still allows and, when some were hidden, a sentence saying so.
        Raises when the usage data cannot be read (the caller shows every profile)."""
        from ..usage.quotas import allowed_profiles, describe_remaining, remaining

        limits, used = self.limits_and_use(who)
        allowed = allowed_profiles(profiles, remaining(limits, used))
        if len(allowed) < len(profiles):
            return allowed, "GPU/NPU choices are hidden by your quota: " + describe_remaining(
                limits, used
            ) + "."
        return allowed, None


@lru_cache(maxsize=8)
def hub_usage(settings: str, url: str) -> HubUsage:
    """One per hub process and settings (the spawner's `usage` trait, as JSON) and database."""
    return HubUsage(UsageConfig.model_validate(json.loads(settings)), url)


# --- what a server's processes used so far: read by the backend that knows where they are ----------
def local_reading(
    spawners: dict, key: str, pid: int, dead: bool, cgroup_counter, cpu_base: float | None
):
    """A local server's CPU and memory now (blocking: /proc, cgroup files). `spawners` are the
    user's servers by name: the account's processes are adopted only when it runs one server (as
    the usage service decides). Where the hub made the account's cgroup for this server
    (`cpu_base`: its CPU counter before the server joined), the kernel's count since then is
    exact, exited processes included, and still there after the server died; otherwise the
    processes are read as the usage service reads them, which needs them alive."""
    from ..usage.collector import ProcessSampler
    from ..usage.models import utcnow
    from ..usage.store import SampleIn

    reading = None
    if not dead and pid:
        roots = {name or "": sp.pid for name, sp in spawners.items() if getattr(sp, "pid", 0)}
        roots[key] = pid
        reading = ProcessSampler().sample(roots).get(key)
    if cpu_base is not None:
        counter = cgroup_counter()
        if counter is not None and counter >= cpu_base:
            # since this server joined the group: cumulative, exited processes included
            return SampleIn(
                0,
                utcnow(),
                counter - cpu_base,
                reading.mem_bytes if reading else 0,
                cpu_departed=0.0,
            )
    if reading is None:
        return None
    # a fresh sampler: processes that exited earlier are the store's to add
    return SampleIn(0, utcnow(), reading.cpu_total, reading.mem_bytes, cpu_departed=None)


def container_reading(engine_url: str | None, key: str, container_id: str):
    """A container's CPU and memory now, from the engine's stats (its own cumulative counter)."""
    from ..usage.collector import ContainerSampler
    from ..usage.models import utcnow
    from ..usage.store import SampleIn

    reading = ContainerSampler(url=engine_url or None).sample({key: container_id}).get(key)
    if reading is None:
        return None
    return SampleIn(0, utcnow(), reading.cpu_total, reading.mem_bytes, cpu_departed=0.0)


@dataclass(frozen=True)
class UsageAnnouncement:
    """The hub pages' announcement for a user whose running server is near or over its budget
    (JupyterHub calls template_vars values with the current user). Cached a few seconds per
    user: it runs on the hub's event loop for every page."""

    settings: str  # the usage section as JSON (hub_usage's key: the spawners' store is shared)
    db_url: str
    base_url: str = "/"

    def __call__(self, user) -> str:
        if user is None:
            return ""
        now = time.monotonic()
        key = (self.db_url, user.name, current_language())  # said in the page's language
        cached = _announcements.get(key)
        if cached and now - cached[0] < 5:
            return cached[1]
        text = ""
        try:
            usage = hub_usage(self.settings, self.db_url)
            store = usage.store() if usage.enabled else None
            if store is not None:
                text = self._text(usage, store.open_sessions(user.name))
        except Exception:  # noqa: BLE001 - a page must render without it
            text = ""
        _announcements[key] = (now, text)
        return text

    def _text(self, usage: HubUsage, sessions) -> str:
        import datetime as dt
        import html

        mine = _("your usage")
        link = f'<a href="{html.escape(self.base_url)}services/usage/me">{html.escape(mine)}</a>'
        over = [s for s in sessions if s.over_limit_at is not None]
        if over:
            stop = min(s.over_limit_at for s in over) + dt.timedelta(
                minutes=usage.cfg.grace_minutes
            )
            return _(
                "Your weekly budget is used up: your running server stops at {time} UTC. "
                "Save your work. See {link}."
            ).format(time=f"{stop:%H:%M}", link=link)
        if any(s.warned_at is not None for s in sessions):
            return _("You have used most of your weekly budget. See {link}.").format(link=link)
        return ""


_announcements: dict[tuple[str, str, str], tuple[float, str]] = {}
