"""Usage accounting hooks every backend's spawner calls.

`usage_started()` runs once the server is up, `usage_stopped(reason)` once it is gone: the
session row is written at the moment each happens. Neither ever raises into the spawn/stop
path (a broken usage store must not stop a class): failures are logged.

Quotas at spawn need no wiring: `UsageHooks` comes before `AcceleratorHooks` in the spawner's
bases, so its `check_user_options` runs first (refusing with 403 and the remaining budget) and
its `_profiles` hides the accelerator profiles that are over budget from the spawn form.

How a stop is named:
- `stopped`: the server ran until the hub stopped it (user, admin, culler);
- `quota`: the usage service stopped it at the limit (it marks the row before asking the hub);
- `died`: the hub saw this server run (or started it) and then found it dead;
- `lost`: it was already dead when a (re)started hub first looked at it -- it died while the
  hub was down; its end is the last moment it was known to run (its last sample).
"""

from __future__ import annotations

import asyncio
import html
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from traitlets.config import LoggingConfigurable

from ..config import MLWorkshopConfig, load_config
from ..site import Site
from .accelerators import refuse


def usage_db_url(cfg: MLWorkshopConfig, site: Site) -> str:
    return site.usage_db_url(cfg)  # the site owns the URL (the usage service and the CLI ask it too)


@dataclass
class HubUsage:
    cfg: MLWorkshopConfig
    url: str
    _store: object = None
    _failed_at: float = 0.0

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


@lru_cache(maxsize=8)
def hub_usage(site_root: str) -> HubUsage:
    site = Site(Path(site_root))
    cfg = load_config(site.root)
    return HubUsage(cfg, usage_db_url(cfg, site))


class UsageUnavailable(Exception):
    pass


class UsageHooks(LoggingConfigurable):
    _usage_started_here: bool = False  # this hub process started the server
    _usage_seen_alive: bool = False  # ... or saw it running
    _usage_stop_called: bool = False  # the hub called stop(): the server was running
    _usage_closed: bool = False  # usage_stopped() already closed the session
    _usage_cpu_base: float | None = None  # the account's cgroup CPU counter before this server joined

    @property
    def _usage(self) -> HubUsage:
        return hub_usage(self.site_root)

    @property
    def _usage_backend(self) -> str:
        names = {cls.__name__ for cls in type(self).__mro__}
        if "DockerSpawner" in names:
            return "docker"
        if "KubeSpawner" in names:
            return "kubernetes"
        return "local"

    def _usage_store(self):
        store = self._usage.store()
        if store is None:
            raise UsageUnavailable("the usage database did not answer a moment ago")
        return store

    # --- life cycle -----------------------------------------------------------------------
    # JupyterHub calls Spawner.stop() only for a server that still runs; for one found dead it
    # goes straight to run_post_stop_hook(). That is where died/lost sessions are closed.
    def start_polling(self):
        self._usage_seen_alive = True  # the hub starts polling a server it saw up (start or restart)
        return super().start_polling()

    async def stop(self, now=False):
        self._usage_stop_called = True
        await self.usage_last_sample()
        await super().stop(now=now)

    async def run_post_stop_hook(self):
        try:
            if not self._usage_closed:
                if self._usage_stop_called:
                    await self.usage_stopped("stopped")
                elif self._usage_started_here or self._usage_seen_alive:
                    await self.usage_last_sample(dead=True)
                    await self.usage_stopped("died")
                else:
                    await self.usage_stopped("lost")
        finally:
            self._usage_closed = self._usage_stop_called = False
            self._usage_started_here = self._usage_seen_alive = False
        result = super().run_post_stop_hook()
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            result = await result
        return result

    async def usage_started(self) -> None:
        self._usage_started_here = True
        self._usage_seen_alive = True
        if not self._usage.cfg.usage.enabled:
            return
        grant = getattr(self, "accelerator_grant", None)
        devices = list(grant.devices) if grant else []
        facts = dict(
            backend=self._usage_backend,
            profile=grant.profile.slug if grant else None,
            devices=[f"{d.kind}:{d.index}" for d in devices],
            device_kind=devices[0].kind if devices else None,
            n_devices=len(devices) if grant and grant.allocated else 0,  # shared mode holds nothing
            pid=getattr(self, "pid", None) or None,
            container_id=getattr(self, "container_id", None) or None,
            groups=[g.name for g in self.user.groups],
        )
        try:
            store = await asyncio.to_thread(self._usage_store)
            await asyncio.to_thread(store.open_session, self.user.name, self.name or "", **facts)
        except Exception as exc:  # noqa: BLE001 - never into the spawn path
            self.log.error("Usage: could not record the start of %s's server %r: %s", self.user.name, self.name, exc)

    async def prepare_cgroup(self):
        """The account's cgroup (CgroupHooks, local backend), and its CPU counter before this
        server joins it: the session's CPU is what the counter adds from here on."""
        dirs = await super().prepare_cgroup()
        self._usage_cpu_base = None
        try:
            if dirs and self._usage.cfg.usage.enabled and not self._usage_other_servers():
                from ..usage.collector import cgroup_cpu_seconds

                self._usage_cpu_base = await asyncio.to_thread(cgroup_cpu_seconds, self._cgroup_account())
        except Exception as exc:  # noqa: BLE001 - never into the spawn path
            self.log.warning("Usage: no CPU counter for %s's server: %s", self.user.name, exc)
        return dirs

    def _usage_other_servers(self) -> bool:
        """Another server of this user runs (its processes share the account and its cgroup)."""
        return any(sp is not self and sp.active for sp in self.user.spawners.values())

    async def usage_last_sample(self, dead: bool = False) -> None:
        """A last sample of this server's processes: the hub is about to stop them (or found the
        server dead), and without it the CPU they used since the usage service's last round (up
        to usage.sample_every seconds; all of a short session) would be missing from the session.

        Where the hub made the account's cgroup for this server, the kernel's count of the
        group's CPU since then is exact, processes that exited included, and still there after
        the server died. Otherwise the processes are read as the usage service reads them, which
        needs them alive: a server found dead then gets no last sample.
        """
        if not self._usage.cfg.usage.enabled:
            return
        try:
            sample = await asyncio.to_thread(self._usage_read_now, dead)
            if sample is not None:
                store = await asyncio.to_thread(self._usage_store)
                await asyncio.to_thread(store.last_sample, self.user.name, self.name or "", sample)
        except Exception as exc:  # noqa: BLE001 - never into the stop path
            self.log.error("Usage: could not take the last sample of %s's server %r: %s", self.user.name, self.name, exc)

    def _usage_read_now(self, dead: bool = False):
        """This server's CPU and memory now (blocking: /proc, cgroup files, container stats)."""
        from ..usage.models import utcnow
        from ..usage.store import SampleIn

        backend, key = self._usage_backend, self.name or ""
        if backend == "local":
            from ..usage.collector import ProcessSampler, cgroup_cpu_seconds

            reading = None
            if not dead and getattr(self, "pid", 0):
                # every running server of this user, so processes of the account are adopted only
                # when it runs one server (as the usage service decides)
                roots = {name or "": sp.pid for name, sp in self.user.spawners.items() if getattr(sp, "pid", 0)}
                roots[key] = self.pid
                reading = ProcessSampler().sample(roots).get(key)
            if self._usage_cpu_base is not None and not self._usage_other_servers():
                counter = cgroup_cpu_seconds(self._cgroup_account())
                if counter is not None and counter >= self._usage_cpu_base:
                    # since this server joined the group: cumulative, exited processes included
                    return SampleIn(0, utcnow(), counter - self._usage_cpu_base,
                                    reading.mem_bytes if reading else 0, cpu_departed=0.0)
            departed = None  # a fresh sampler: processes that exited earlier are the store's to add
        elif backend == "docker" and not dead and getattr(self, "container_id", None):
            from ..usage.collector import ContainerSampler

            docker = getattr(self._usage.cfg.spawner, "docker", None)
            reading = ContainerSampler(url=getattr(docker, "url", None) or None).sample({key: self.container_id}).get(key)
            departed = 0.0  # the container's own counter: cumulative, exited processes included
        else:
            return None
        if reading is None:
            return None
        return SampleIn(0, utcnow(), reading.cpu_total, reading.mem_bytes, cpu_departed=departed)

    async def usage_stopped(self, reason: str = "stopped") -> None:
        if not self._usage.cfg.usage.enabled:
            return
        self._usage_closed = True
        try:
            store = await asyncio.to_thread(self._usage_store)
            closed = await asyncio.to_thread(store.close_session, self.user.name, self.name or "", reason)
            if closed is not None and closed.end_reason != "stopped":
                self.log.info("Usage: %s's server %r ended (%s)", self.user.name, self.name, closed.end_reason)
        except Exception as exc:  # noqa: BLE001 - never into the stop path
            self.log.error("Usage: could not record the stop of %s's server %r: %s", self.user.name, self.name, exc)

    # --- quotas at spawn --------------------------------------------------------------------
    def _usage_limits_and_use(self):
        from ..usage.quotas import Used, current_use, effective_limits

        store = self._usage_store()
        cfg = self._usage.cfg.usage
        groups = [g.name for g in self.user.groups]
        limits = effective_limits(self.user.name, groups, bool(self.user.admin), cfg.quotas, store.overrides())
        if limits.unlimited:
            return limits, Used()
        used = current_use(store, self.user.name)
        mine = [s for s in store.open_sessions(self.user.name) if s.server_name == (self.name or "")]
        if mine:  # this very server (a restart): do not count it against itself
            used = Used(used.gpu_hours, used.cpu_hours, max(0, used.servers - len(mine)),
                        max(0, used.devices - sum(s.n_devices for s in mine)))
        return limits, used

    async def usage_check_spawn(self, profile_slug: str | None) -> None:
        """Refuse (403, with what is left) a start the user's budget does not allow."""
        cfg = self._usage.cfg.usage
        if not cfg.enabled:
            return
        from ..usage.quotas import spawn_refusal

        try:
            limits, used = await asyncio.to_thread(self._usage_limits_and_use)
        except Exception as exc:  # noqa: BLE001
            if cfg.failover_open:
                self.log.warning("Usage data unavailable (%s); usage.failover_open lets %s start", exc, self.user.name)
                return
            raise refuse("Usage data is unavailable right now, and this hub does not start servers "
                         "without it (usage.failover_open is false). Try again in a minute.", 503) from None
        if limits.unlimited:
            return
        count = 0
        try:
            profiles = await asyncio.to_thread(super()._profiles, False)  # type: ignore[misc]
            from ..accelerators import validate_choice

            count = validate_choice(profile_slug, profiles).count
        except Exception:  # noqa: BLE001 - an invalid choice is refused by the accelerator hooks
            count = 0
        message = spawn_refusal(limits, used, count)
        if message:
            self.log.info("Spawn of %s refused by quota: %s", self.user.name, message)
            raise refuse(message, 403)  # said as it is on the spawn page, not "HTTP 403: error (...)"

    async def check_user_options(self, user_options: dict) -> None:
        await self.usage_check_spawn((user_options or {}).get("profile"))
        await super().check_user_options(user_options)

    def _profiles(self, only_free: bool):
        profiles = super()._profiles(only_free)
        if not only_free or not self._usage.cfg.usage.enabled:
            return profiles
        from ..usage.quotas import allowed_profiles, remaining

        from ..usage.quotas import describe_remaining

        self._usage_form = None
        try:
            limits, used = self._usage_limits_and_use()
        except Exception as exc:  # noqa: BLE001 - the spawn itself applies failover_open
            self.log.warning("Usage data unavailable for the spawn form: %s", exc)
            return profiles
        allowed = allowed_profiles(profiles, remaining(limits, used))
        if len(allowed) < len(profiles):
            self._usage_form = (allowed, "GPU/NPU choices are hidden by your quota: " + describe_remaining(limits, used) + ".")
        return allowed

    async def get_options_form(self) -> str:
        """The accelerator hooks' form, plus why choices are missing. When the quota leaves one
        choice, a form is still shown: without one JupyterHub would re-use the last choice (a GPU
        the quota now refuses) and the student could never pick the CPU-only server."""
        self._usage_form = None
        form = await super().get_options_form()
        hidden = getattr(self, "_usage_form", None)
        if not hidden:
            return form
        allowed, note = hidden
        note_html = f'<p class="alert alert-warning mlw-quota-note">{html.escape(note)}</p>'
        if form:
            return note_html + form
        if len(allowed) != 1:
            return note_html
        from ..accelerators.profiles import FORM_FIELD

        p = allowed[0]
        detail = " · ".join(x for x in (p.description, p.resources) if x)
        return (note_html + '<div class="mlw-profiles"><div class="radio">'
                f'<label for="mlw-profile-{html.escape(p.slug)}"><input type="radio" name="{FORM_FIELD}" '
                f'id="mlw-profile-{html.escape(p.slug)}" value="{html.escape(p.slug)}" checked> '
                f"<strong>{html.escape(p.display_name)}</strong>"
                + (f' <span class="text-muted">{html.escape(detail)}</span>' if detail else "")
                + "</label></div></div>")


@dataclass(frozen=True)
class UsageAnnouncement:
    """The hub pages' announcement for a user whose running server is near or over its budget
    (JupyterHub calls template_vars values with the current user). Cached a few seconds per
    user: it runs on the hub's event loop for every page."""

    site_root: str
    base_url: str = "/"

    def __call__(self, user) -> str:
        if user is None:
            return ""
        now = time.monotonic()
        cached = _announcements.get((self.site_root, user.name))
        if cached and now - cached[0] < 5:
            return cached[1]
        text = ""
        try:
            usage = hub_usage(self.site_root)
            store = usage.store() if usage.cfg.usage.enabled else None
            if store is not None:
                text = self._text(usage, store.open_sessions(user.name))
        except Exception:  # noqa: BLE001 - a page must render without it
            text = ""
        _announcements[(self.site_root, user.name)] = (now, text)
        return text

    def _text(self, usage: HubUsage, sessions) -> str:
        import datetime as dt
        import html

        link = f'<a href="{html.escape(self.base_url)}services/usage/me">your usage</a>'
        over = [s for s in sessions if s.over_limit_at is not None]
        if over:
            stop = min(s.over_limit_at for s in over) + dt.timedelta(minutes=usage.cfg.usage.grace_minutes)
            return (f"Your weekly budget is used up: your running server stops at {stop:%H:%M} UTC. "
                    f"Save your work. See {link}.")
        if any(s.warned_at is not None for s in sessions):
            return f"You have used most of your weekly budget. See {link}."
        return ""


_announcements: dict[tuple[str, str], tuple[float, str]] = {}
