"""The one spawner lifecycle every backend shares, in a stated order (`WorkshopSpawner`).

A backend is a thin class: `backend_name`, and `start_backend` (plus `stop_backend` /
`poll_backend` where the engine's own are not enough). Accelerators, usage and cgroups are
objects the lifecycle calls (hub/accelerators.py, hub/usage_hooks.py, hub/cgroup_hooks.py), not
mixins resolved through the class hierarchy; their settings are this class's traits, set by
hub/configure.py like every other option (and so changeable in `jupyterhub_config.d/`).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import ClassVar

from jupyterhub.spawner import Spawner
from jupyterhub.utils import maybe_future
from pydantic import ValidationError
from sqlalchemy.orm import object_session
from traitlets import Bool, Dict, Float, Integer, TraitError, Unicode, default, validate

from .. import cgroups
from ..accelerators import (
    Grant,
    InvalidChoice,
    NoDeviceFree,
    OverLimit,
    validate_choice,
)
from ..accelerators import options_from_form as profile_from_form
from ..config.accelerators import AcceleratorsConfig
from ..config.usage import UsageConfig
from ..i18n import gettext
from .accelerators import HubAccelerators, StaleDevices, Who, hub_accelerators, refuse, settings_key
from .cgroup_hooks import UserCgroups
from .spawn_form import render_options_form
from .usage_hooks import HubUsage, hub_usage
from .workspace import Workspace, WorkspaceError, prepare_workspace


class StartQueue:
    """Admission control: at most `limit` servers start at once, the rest wait their turn.

    Stock JupyterHub starts every request at once; on 2 cores 30 cold starts each get a sliver of
    CPU, pass http_timeout and are killed. Waiting in line is slower for nobody and fails nobody.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.running = 0
        self.waiting: list[asyncio.Future] = []

    def position(self, ticket: asyncio.Future) -> int:
        return self.waiting.index(ticket) + 1 if ticket in self.waiting else 0

    async def acquire(self) -> None:
        if self.running < self.limit and not self.waiting:
            self.running += 1
            return
        ticket = asyncio.get_running_loop().create_future()
        self.waiting.append(ticket)
        try:
            await ticket  # release() hands its slot over: running stays counted
        except BaseException:
            if ticket in self.waiting:
                self.waiting.remove(ticket)
            elif ticket.done() and not ticket.cancelled():
                self.release()  # we were handed a slot but are going away: pass it on
            raise

    def release(self) -> None:
        while self.waiting:
            ticket = self.waiting.pop(0)
            if not ticket.done():
                ticket.set_result(None)
                return
        self.running -= 1


_queues: dict[int, StartQueue] = {}


def start_queue(limit: int) -> StartQueue:
    """One queue per hub process (and per limit, for tests that build several configs)."""
    if limit not in _queues:
        _queues[limit] = StartQueue(limit)
    return _queues[limit]


def hub_server_alive(users):
    """`alive(user, server)` for StaleDevices, from the hub's own spawner objects: a server that
    is starting or stopping counts as alive (its own lifecycle grants or releases), one the hub
    thinks is up is asked whether its process still runs."""

    async def alive(username: str, server_name: str) -> bool:
        try:
            spawner = users[username].spawners.get(server_name) if users is not None else None
        except KeyError:
            spawner = None
        if spawner is None:
            return False
        if spawner.pending:
            return True
        return bool(spawner.active) and await spawner.poll() is None

    return alive


class WorkshopSpawner(Spawner):
    """What every backend shares: the lifecycle, in this order.

    Start (`start()`; JupyterHub has already run `check_user_options` on the chosen profile: the
    usage quota (403 with what is left), then the profile itself (400)):
      1. queue: wait for one of `max_concurrent_starts` slots; `progress()` shows the place in line;
      2. devices: the profile validated again and its devices granted (accelerators); refused with
         `jupyterhub_message` (the spawn page says why in a sentence), the saved choice forgotten,
         nothing started;
      3. workspace: the user's folders and, on a root hub, their system account;
      4. cgroup: where the backend asks for one (`cgroup_limits()`, the local backend), the
         account's group with the profile's limits, and usage's CPU counter before the server joins;
      5. backend: `start_backend(grant)` -> (ip, port), the only step a backend writes;
      6. usage: the session opened.
      A failure in 3-5 releases the devices of step 2 and is raised (JupyterHub then stops what
      was started, and the stop below removes the rest).
    Stop (`stop()`), the way back:
      1. usage: a last sample of the server's processes, before they are gone;
      2. backend: `stop_backend(now)`;
      3. cgroup: what the server left behind killed, the group removed, before the devices are
         handed on;
      4. devices released;
      5. usage: the session closed as "stopped".
    Found dead (JupyterHub skips `stop()` and calls `run_post_stop_hook()`): a last sample (the
    cgroup's counter outlives the server), devices released, the session closed as "died" (this
    hub saw it run) or "lost" (it died while the hub was down).
    Deleted (`delete_forever()`, after the hub stopped the server): the user's system account and
    every process of it removed (hub/removal.py); files stay.
    Devices of servers that stopped without telling us are freed by a hub-level task
    (hub/accelerators.py StaleDevices), not by one user's spawner looking at the others'.

    Backends subclass this class first and their engine's spawner class second, set
    `backend_name`, and implement `start_backend`; `stop_backend` and `poll_backend` default to
    the engine's own `stop`/`poll`, reached through `engine_start`/`engine_stop`/`engine_poll`.
    They must not override `start`, `stop` or `poll`.
    """

    backend_name: ClassVar[str] = ""  # recorded with each usage session: local, docker, kubernetes

    site_root = Unicode(help="The site folder (users/, submissions/ live here).").tag(config=True)
    content_dir = Unicode(help="Folder with lessons/, datasets/, models/.").tag(config=True)
    user_prefix = Unicode("mlw-", help="Prefix of per-user system accounts.").tag(config=True)
    admin_group = Unicode("mlw-admins", help="System group of hub admins.").tag(config=True)
    isolate_users = Bool(
        True, help="Run each server as the user's own system account (needs a root hub)."
    ).tag(config=True)
    max_concurrent_starts = Integer(4, help="Servers starting at once; the rest wait in line.").tag(
        config=True
    )
    accelerators = Dict(
        help="The accelerators section of mlworkshop.yaml (mode, inventory, limits, profiles, device "
        "groups), as a dict; checked like the file (mlworkshop.config.accelerators).",
    ).tag(config=True)
    hub_db_url = Unicode(
        "", help="Database of the device allocator (exclusive mode): the hub's own database URL."
    ).tag(config=True)
    usage = Dict(
        help="The usage section of mlworkshop.yaml (enabled, quotas, failover_open ...), as a dict; "
        "checked like the file (mlworkshop.config.usage).",
    ).tag(config=True)
    usage_db_url = Unicode("", help="The usage database's URL (sessions, samples, quotas).").tag(
        config=True
    )
    language = Unicode(
        "auto",
        help="hub.language: the default language of a new server's JupyterLab (auto: the language "
        "of the browser that starts it). Students can switch it in JupyterLab.",
    ).tag(config=True)
    stale_devices_every = Float(
        60,
        help="Seconds between two rounds of the hub-level task that frees devices held by servers "
        "that no longer run (0: only when a grant finds a kind all taken).",
    ).tag(config=True)

    @validate("accelerators")
    def _valid_accelerators(self, proposal):
        return _checked("accelerators", AcceleratorsConfig, proposal["value"])

    @validate("usage")
    def _valid_usage(self, proposal):
        return _checked("usage", UsageConfig, proposal["value"])

    workspace: Workspace | None = None
    accelerator_grant: Grant | None = None
    cgroup_dirs: list[str] = []  # what the server's process joins (empty: no cgroup)
    _usage_cpu_base: float | None = (
        None  # the account's cgroup CPU counter before this server joined
    )
    _queue_ticket_state: str = ""
    _step_times: dict[str, float] | None = None  # when each step of the current start ended
    # what the post-stop hook needs to name an end (stopped / died / lost)
    _started_here: bool = False  # this hub process started the server
    _seen_alive: bool = False  # ... or saw it running
    _stop_called: bool = False  # the hub called stop(): the server was running
    _closed: bool = False  # stop() already closed the session

    # --- the objects the lifecycle calls --------------------------------------------------------
    @property
    def hub_accelerators(self) -> HubAccelerators:
        acc = hub_accelerators(settings_key(self.accelerators), self.hub_db_url)
        users = self.user.settings.get(
            "users"
        )  # the hub's own (absent: a spawner built outside a hub)
        if acc.allocator is not None and acc.stale is None and users is not None:
            acc.stale = StaleDevices(
                acc.allocator, hub_server_alive(users), self.stale_devices_every, self.log
            )
        if acc.stale is not None:
            try:
                acc.stale.start()
            except RuntimeError:  # no running event loop (a spawner built outside the hub)
                pass
        return acc

    @property
    def hub_usage(self) -> HubUsage:
        return hub_usage(settings_key(self.usage), self.usage_db_url)

    def who(self) -> Who:
        return Who(
            self.user.name,
            tuple(g.name for g in self.user.groups),
            bool(self.user.admin),
            self.name or "",
        )

    @property
    def runs_as_root(self) -> bool:
        return os.geteuid() == 0 and self.isolate_users

    def account_name(self) -> str | None:
        """The server's system account, as the workspace step names it (also after a hub restart,
        when this spawner has not prepared a workspace itself)."""
        return self.user_prefix + self.user.name if self.runs_as_root else None

    # --- what a backend writes ----------------------------------------------------------------
    async def start_backend(self, granted: Grant) -> tuple[str, int]:
        """Step 5: start the server (workspace, cgroup and devices are ready). Returns (ip, port)."""
        raise NotImplementedError

    async def stop_backend(self, now: bool = False) -> None:
        await self.engine_stop(now)

    async def poll_backend(self) -> int | None:
        return await self.engine_poll()

    def cgroup_limits(self) -> cgroups.Limits | None:
        """Limits for a cgroup the hub makes (step 4); None: the engine makes its own."""
        return None

    def read_usage(self, dead: bool = False):
        """The server's CPU and memory now (a usage SampleIn), for the last sample; None: unknown."""
        return None

    async def engine_start(self):
        """The engine's own start (the spawner class after this one in the backend's bases)."""
        return await super().start()

    async def engine_stop(self, now: bool = False):
        return await super().stop(now=now)

    async def engine_poll(self):
        return await super().poll()

    # --- start ----------------------------------------------------------------------------------
    async def start(self):
        queue = start_queue(self.max_concurrent_starts)
        self._queue_ticket_state = "waiting"
        self._step_times = {"asked": time.monotonic()}
        await queue.acquire()  # 1. queue
        self._step_times["in line"] = time.monotonic()
        try:
            self._queue_ticket_state = "starting"
            granted = await self.grant_devices()  # 2. devices (refused here: nothing was started)
            self._mark("devices granted")
            try:
                await self.prepare_user_workspace()  # 3. workspace
                self._mark("workspace")
                await self.make_cgroup()  # 4. cgroup
                address = await self.start_backend(granted)  # 5. backend
            except BaseException:
                await self.release_devices()
                raise
            await self.usage_opened()  # 6. usage
            self._mark("usage recorded")
            self._log_step_times()
            return address
        finally:
            self._queue_ticket_state = ""
            queue.release()

    async def poll(self):
        return await self.poll_backend()

    def start_polling(self):
        self._seen_alive = True  # the hub starts polling a server it saw up (start or restart)
        return super().start_polling()

    # --- stop -----------------------------------------------------------------------------------
    async def stop(self, now=False):
        self._stop_called = True
        await self.usage_last_sample()  # 1. usage
        try:
            await self.stop_backend(now)  # 2. backend
        finally:
            await self.remove_cgroup()  # 3. cgroup
            await self.release_devices()  # 4. devices
            await self.usage_closed("stopped")  # 5. usage
            self._closed = True

    async def run_post_stop_hook(self):
        """JupyterHub calls Spawner.stop() only for a server that still runs; for one found dead
        it goes straight here. That is where a dead server's devices and session are closed."""
        try:
            if not self._closed:
                if self._stop_called:
                    await self.usage_closed("stopped")
                elif self._started_here or self._seen_alive:
                    await self.usage_last_sample(dead=True)
                    await self.release_devices()
                    await self.usage_closed("died")
                else:
                    await self.release_devices()
                    await self.usage_closed("lost")
        finally:
            self._closed = self._stop_called = self._started_here = self._seen_alive = False
        return await maybe_future(super().run_post_stop_hook())

    async def delete_forever(self):
        """The user is deleted (admin page, API, `mlworkshop user remove`; the hub has stopped
        the server by now): end every other process of the account and delete it, its uid never
        handed out again (hub/removal.py), so nothing of the removed user lives on. Files stay."""
        await maybe_future(super().delete_forever())
        if self.name or not self.runs_as_root:
            return  # a named server going away is not its user going away
        from .removal import remove_system_account

        problems = await asyncio.to_thread(
            remove_system_account, self.account_name(), Path(self.site_root) / "state"
        )
        for problem in problems:
            self.log.error("Removing %s: %s", self.user.name, problem)

    # --- 2/4. devices ---------------------------------------------------------------------------
    async def grant_devices(self) -> Grant:
        """Validate the chosen profile on the server side and take its devices."""
        acc, who = self.hub_accelerators, self.who()
        choice = (self.user_options or {}).get("profile")
        try:
            if not acc.devices:  # nothing to hand out: no thread or database on the start path
                self.accelerator_grant = acc.grant(
                    who, validate_choice(choice, acc.profiles(who, False))
                )
                return self.accelerator_grant
            profile = validate_choice(choice, await asyncio.to_thread(acc.profiles, who, False))
            try:
                self.accelerator_grant = await asyncio.to_thread(acc.grant, who, profile)
            except (NoDeviceFree, OverLimit):
                # a holder may have died a moment ago: the hub-level task looks now, then once more
                if acc.stale is None or not await acc.stale.release():
                    raise
                self.accelerator_grant = await asyncio.to_thread(acc.grant, who, profile)
        except (InvalidChoice, NoDeviceFree, OverLimit) as exc:
            self._forget_choice(str(exc))
            raise refuse(str(exc), 400 if isinstance(exc, InvalidChoice) else 409) from None
        if self.accelerator_grant.devices:
            self.log.info(
                "%s gets %s",
                self.user.name,
                [f"{d.kind}:{d.index}" for d in self.accelerator_grant.devices],
            )
        return self.accelerator_grant

    async def release_devices(self) -> None:
        acc = self.hub_accelerators
        if acc.allocator is not None:
            await asyncio.to_thread(acc.release, self.who())
        self.accelerator_grant = None

    def accelerator_env(self) -> dict[str, str]:
        return dict(self.accelerator_grant.env) if self.accelerator_grant else {}

    # --- 3. workspace ---------------------------------------------------------------------------
    async def prepare_user_workspace(self) -> Workspace:
        site = Path(self.site_root)
        try:
            self.workspace = await asyncio.to_thread(
                prepare_workspace,
                site / "users",
                site / "submissions",
                Path(self.content_dir),
                self.user.name,
                bool(self.user.admin),
                self.account_name(),
                self.admin_group,
            )
        except (OSError, WorkspaceError) as exc:
            self.log.error("Workspace for %s could not be prepared: %s", self.user.name, exc)
            raise RuntimeError(
                gettext(
                    "Your workspace could not be prepared ({error}). Ask an administrator to "
                    "check the hub's log and free disk space."
                ).format(error=exc)
            ) from None
        return self.workspace

    # --- 4. cgroup ------------------------------------------------------------------------------
    async def make_cgroup(self) -> list[str]:
        """The account's group with this server's limits, and its CPU counter before the server
        joins it: the session's CPU is what the counter adds from here on."""
        self.cgroup_dirs, self._usage_cpu_base = [], None
        limits = self.cgroup_limits()
        if limits is None:
            return []
        self.cgroup_dirs = await UserCgroups(self.log).make(
            self.user.name, self.account_name(), limits
        )
        try:
            if self.cgroup_dirs and self.hub_usage.enabled and not self._other_servers():
                from ..usage.collector import cgroup_cpu_seconds

                self._usage_cpu_base = await asyncio.to_thread(
                    cgroup_cpu_seconds, self.account_name()
                )
        except Exception as exc:  # noqa: BLE001 - never into the spawn path
            self.log.warning("Usage: no CPU counter for %s's server: %s", self.user.name, exc)
        return self.cgroup_dirs

    async def remove_cgroup(self) -> None:
        if self.cgroup_limits() is not None:
            await UserCgroups(self.log).remove(self.user.name, self.account_name())
        self.cgroup_dirs = []

    def _other_servers(self) -> bool:
        """Another server of this user runs (its processes share the account and its cgroup)."""
        return any(sp is not self and sp.active for sp in self.user.spawners.values())

    # --- 6. usage -------------------------------------------------------------------------------
    async def usage_opened(self) -> None:
        self._started_here = self._seen_alive = True
        usage = self.hub_usage
        if not usage.enabled:
            return
        grant = self.accelerator_grant
        devices = list(grant.devices) if grant else []
        facts = dict(
            backend=self.backend_name,
            profile=grant.profile.slug if grant else None,
            devices=[f"{d.kind}:{d.index}" for d in devices],
            device_kind=devices[0].kind if devices else None,
            n_devices=len(devices) if grant and grant.allocated else 0,  # shared mode holds nothing
            pid=getattr(self, "pid", None) or None,
            container_id=getattr(self, "container_id", None) or None,
            groups=[g.name for g in self.user.groups],
        )
        try:
            await asyncio.to_thread(usage.opened, self.who(), **facts)
        except Exception as exc:  # noqa: BLE001 - never into the spawn path
            self.log.error(
                "Usage: could not record the start of %s's server %r: %s",
                self.user.name,
                self.name,
                exc,
            )

    async def usage_last_sample(self, dead: bool = False) -> None:
        """A last sample of this server's processes: the hub is about to stop them (or found the
        server dead), and without it the CPU they used since the usage service's last round (up
        to usage.sample_every seconds; all of a short session) would be missing from the session."""
        usage = self.hub_usage
        if not usage.enabled:
            return
        try:
            sample = await asyncio.to_thread(self.read_usage, dead)
            if sample is not None:
                await asyncio.to_thread(usage.last_sample, self.who(), sample)
        except Exception as exc:  # noqa: BLE001 - never into the stop path
            self.log.error(
                "Usage: could not take the last sample of %s's server %r: %s",
                self.user.name,
                self.name,
                exc,
            )

    async def usage_closed(self, reason: str) -> None:
        usage = self.hub_usage
        if not usage.enabled:
            return
        try:
            closed = await asyncio.to_thread(usage.closed, self.who(), reason)
            if closed is not None and closed.end_reason != "stopped":
                self.log.info(
                    "Usage: %s's server %r ended (%s)", self.user.name, self.name, closed.end_reason
                )
        except Exception as exc:  # noqa: BLE001 - never into the stop path
            self.log.error(
                "Usage: could not record the stop of %s's server %r: %s",
                self.user.name,
                self.name,
                exc,
            )

    # --- before start: the spawn form and the submitted choice ----------------------------------
    @default("apply_user_options")
    def _default_apply_user_options(self):
        return lambda spawner, user_options: spawner.check_user_options(user_options)

    async def check_user_options(self, user_options: dict) -> None:
        """Refuse before anything starts: over the usage budget (403, with what is left), then a
        crafted or stale choice (400)."""
        choice = (user_options or {}).get("profile")
        await self._check_quota(choice)
        acc, who = self.hub_accelerators, self.who()
        allowed = await asyncio.to_thread(acc.profiles, who, False)
        try:
            validate_choice(choice, allowed)
        except InvalidChoice as exc:
            self._forget_choice(str(exc))
            raise refuse(str(exc), 400) from None

    async def _check_quota(self, choice: str | None) -> None:
        usage = self.hub_usage
        if not usage.enabled:
            return
        acc, who = self.hub_accelerators, self.who()

        def device_count() -> int:
            try:
                return validate_choice(choice, acc.profiles(who, False)).count
            except Exception:  # noqa: BLE001 - an invalid choice is refused by check_user_options
                return 0

        try:
            message = await asyncio.to_thread(usage.spawn_refusal, who, device_count)
        except Exception as exc:  # noqa: BLE001
            if usage.cfg.failover_open:
                self.log.warning(
                    "Usage data unavailable (%s); usage.failover_open lets %s start",
                    exc,
                    self.user.name,
                )
                return
            raise refuse(
                "Usage data is unavailable right now, and this hub does not start servers "
                "without it (usage.failover_open is false). Try again in a minute.",
                503,
            ) from None
        if message:
            self.log.info("Spawn of %s refused by quota: %s", self.user.name, message)
            raise refuse(
                message, 403
            )  # said as it is on the spawn page, not "HTTP 403: error (...)"

    def _offer(self) -> tuple[list, list[str], str | None]:
        """The profiles to show now; for each kind of device the user may use but that is all
        taken, who holds it; and the sentence saying what the usage budget hid (blocking)."""
        acc, usage, who = self.hub_accelerators, self.hub_usage, self.who()
        offered = acc.profiles(who, True)
        quota_note = None
        if usage.enabled:
            try:
                offered, quota_note = usage.over_budget(who, offered)
            except Exception as exc:  # noqa: BLE001 - the spawn itself applies failover_open
                self.log.warning("Usage data unavailable for the spawn form: %s", exc)
        return offered, acc.not_offered(who, offered), quota_note

    async def get_options_form(self) -> str:
        """The profiles as radio buttons, with why choices are missing. When the quota leaves one
        choice, a form is still shown: without one JupyterHub would re-use the last choice (a GPU
        the quota now refuses) and the student could never pick the CPU-only server."""
        profiles, notes, quota_note = await asyncio.to_thread(self._offer)
        stale = self.hub_accelerators.stale
        if notes and stale is not None and await stale.release():  # a holder died a moment ago
            profiles, notes, quota_note = await asyncio.to_thread(self._offer)
        orm_spawner = getattr(self, "orm_spawner", None)
        saved = (orm_spawner.user_options or {}).get("profile") if orm_spawner is not None else None
        if saved and saved not in {p.slug for p in profiles}:
            self._forget_choice(f"{str(saved)[:40]!r} is not offered now")
        return render_options_form(profiles, notes, quota_note)

    def options_from_form(self, formdata):
        return profile_from_form(formdata)

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

    # --- the spawn page while it waits ----------------------------------------------------------
    async def progress(self):
        """Events for the spawn page: the student's place in line while the class rushes in."""
        queue = start_queue(self.max_concurrent_starts)
        shown = None
        while self._queue_ticket_state == "waiting":
            waiting = len(queue.waiting)
            if waiting != shown:
                shown = waiting
                yield {
                    "progress": 10,
                    # in the language of the spawn page that asks (hub/i18n.py)
                    "message": gettext(
                        "Many students are starting at once: yours is in line "
                        "({waiting} waiting, {limit} starting at a time)"
                    ).format(waiting=waiting, limit=queue.limit),
                }
            await asyncio.sleep(0.5)
        yield {"progress": 50, "message": gettext("Starting your JupyterLab")}

    def _mark(self, step: str) -> None:
        if self._step_times is not None:
            self._step_times[step] = time.monotonic()

    def _log_step_times(self) -> None:
        """One line per start saying where its time went: what an admin needs when a class
        says "it is slow" (and what bench/rush.py's numbers are made of)."""
        marks = list(self._step_times.items())
        steps = ", ".join(
            f"{name} {t - prev:.2f} s"
            for (_, prev), (name, t) in zip(marks, marks[1:], strict=False)
        )
        self.log.info(
            "Started %s's server in %.2f s: %s", self.user.name, marks[-1][1] - marks[0][1], steps
        )


def _checked(section: str, model, value: dict) -> dict:
    """A section set in traitlets config is checked like mlworkshop.yaml: a bad one is refused
    with the key, the value and what is wrong (never a traceback)."""
    try:
        return json.loads(model.model_validate(value or {}).model_dump_json())
    except ValidationError as exc:
        problems = "; ".join(
            f"{section}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise TraitError(f"WorkshopSpawner.{section} is not valid: {problems}") from None


def check_spawner_sections(c) -> None:
    """After jupyterhub_config.d/: the sections a file there may have changed, checked like
    mlworkshop.yaml, so a bad one stops the hub at start with its key (not each spawn later)."""
    section = c.WorkshopSpawner
    for name, model in (("accelerators", AcceleratorsConfig), ("usage", UsageConfig)):
        if name in section:
            try:
                _checked(name, model, section[name])
            except TraitError as exc:
                raise SystemExit(
                    f"{exc} (set in jupyterhub_config.d/ or mlworkshop.yaml)"
                ) from None
