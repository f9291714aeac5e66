"""Class pre-warm: a group's servers started before the bell, kept until the class has begun.

With forked servers a start costs little, but 60 students logging in at the same minute still
queue for 60 starts. `mlworkshop class start GROUP [--at HH:MM]` starts them before the bell, so at
the bell logging in is the only cost. The schedule lives in the JupyterHub group's `properties`
(key SCHEDULE_KEY), which only an admin can set: a student cannot give their own server the
protection by sending options with a spawn request.

Who does what:
- the CLI writes the schedule (and, with no --at, starts the servers at once);
- the idle-culler service (hub/culler.py) reads the schedules every tick: it starts the members'
  servers when the pre-warm time comes, and its cull arbiter (`ClassBell.arbiter`) leaves a
  member's server alone from the pre-warm until the bell plus the grace period. After that, a
  pre-warmed server nobody used is stopped at once; one that was used follows the idle rule.

This module holds the rules (pure functions of times and models) and the small client the culler
service uses; it imports nothing of the hub process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

SCHEDULE_KEY = "mlw_class"
# A server whose last activity (or its user's) is within this long of its start was never used:
# JupyterHub stamps `last_activity` at the start and the server reports its own start time as it
# comes up (later under a rush, when its start waited in line). The hub records a user's activity
# only when it is 30 s newer than the last (activity_resolution). Pre-warmed servers start
# culler.class_prewarm (10 min) before the bell, so at the bell this slack cannot hide a student.
UNUSED_SLACK = dt.timedelta(seconds=60)
# How far from the pre-warm a server's start may be and still count as pre-warmed (a server
# started by the student hours earlier is not the class's).
START_SLACK = dt.timedelta(minutes=2)
TICK_SECONDS = 15


class ScheduleError(ValueError):
    """A schedule the CLI refuses, with what to type instead."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_time(value: str) -> dt.datetime:
    """An ISO-8601 timestamp as JupyterHub writes them (always with a zone) -> aware UTC."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def bell_at(clock: str, now: dt.datetime | None = None) -> dt.datetime:
    """`--at HH:MM` (or HH:MM:SS), today in this machine's local time -> aware UTC. A time that
    has passed today is refused: a class at 08:00 scheduled at 09:00 is a typo, not tomorrow."""
    now = now or utcnow()
    local_now = now.astimezone()
    try:
        parts = [int(p) for p in clock.split(":")]
        if len(parts) not in (2, 3):
            raise ValueError
        when = local_now.replace(
            hour=parts[0], minute=parts[1], second=parts[2] if len(parts) == 3 else 0, microsecond=0
        )
    except ValueError:
        raise ScheduleError(
            f"--at {clock!r} is not a time of day: give it as HH:MM, e.g. --at 08:00"
        ) from None
    if when < local_now:
        raise ScheduleError(
            f"--at {clock} has passed today (it is {local_now:%H:%M} here): give a later time, or "
            "leave --at out to start the servers now."
        )
    return when.astimezone(dt.UTC)


@dataclass(frozen=True)
class Schedule:
    """One group's class: when its servers start (`prewarm_at`), the bell, and how long after the
    bell an unused pre-warmed server is kept."""

    group: str
    bell: dt.datetime
    prewarm: dt.timedelta
    grace: dt.timedelta

    @property
    def prewarm_at(self) -> dt.datetime:
        return self.bell - self.prewarm

    @property
    def protected_until(self) -> dt.datetime:
        return self.bell + self.grace

    def to_properties(self) -> dict[str, Any]:
        return {
            SCHEDULE_KEY: {
                "bell": self.bell.isoformat(),
                "prewarm_seconds": int(self.prewarm.total_seconds()),
                "grace_seconds": int(self.grace.total_seconds()),
            }
        }

    @classmethod
    def from_group(cls, group: Mapping[str, Any]) -> Schedule | None:
        """The schedule in a group model from JupyterHub's API; None when there is none (or it is
        not one of ours: anything malformed is ignored, never acted on)."""
        raw = (group.get("properties") or {}).get(SCHEDULE_KEY)
        if not isinstance(raw, Mapping):
            return None
        try:
            return cls(
                group=str(group["name"]),
                bell=parse_time(str(raw["bell"])),
                prewarm=dt.timedelta(seconds=max(0, int(raw.get("prewarm_seconds", 0)))),
                grace=dt.timedelta(seconds=max(0, int(raw.get("grace_seconds", 0)))),
            )
        except (KeyError, TypeError, ValueError):
            return None


def started_for(schedule: Schedule, server: Mapping[str, Any]) -> bool:
    """Whether a server was started for this class: at or after its pre-warm time (less a little
    slack) and before the end of its grace period."""
    started = server.get("started")
    if not started:
        return False
    when = parse_time(started)
    return schedule.prewarm_at - START_SLACK <= when <= schedule.protected_until


def never_used(server: Mapping[str, Any], user_last_activity: str | None) -> bool:
    """Whether nobody has used a server since it started. The user's own last activity counts:
    the hub records it at once when the student logs in or opens JupyterLab (through the hub's
    OAuth), while a server's own activity reaches the hub only every few minutes."""
    started = server.get("started")
    if not started:
        return True
    seen = [t for t in (server.get("last_activity"), user_last_activity) if t]
    if not seen:
        return True
    return max(parse_time(t) for t in seen) - parse_time(started) <= UNUSED_SLACK


def cull_decision(
    schedules: Iterable[Schedule],
    server: Mapping[str, Any],
    now: dt.datetime,
    user_last_activity: str | None,
) -> bool | None:
    """For a member's server: False (keep it: the class has not begun, or is in its grace
    period), True (cull it: pre-warmed for a class whose grace is over, and never used), or None
    (no class decides: the usual idle rule applies)."""
    for schedule in schedules:
        if not started_for(schedule, server):
            continue
        if now < schedule.protected_until:
            return False
        if never_used(server, user_last_activity):
            return True
    return None


def due_to_start(schedule: Schedule, now: dt.datetime) -> bool:
    """Whether this schedule's servers should be running now (the pre-warm has come and the
    class is not over its grace period)."""
    return schedule.prewarm_at <= now < schedule.protected_until


def user_of(server: Mapping[str, Any]) -> str | None:
    """The user a server model from GET /users belongs to: its URL is <base>/user/<name>/[server]."""
    url = str(server.get("url") or "")
    marker = "/user/"
    if marker not in url:
        return None
    rest = url.split(marker, 1)[1]
    name = rest.split("/", 1)[0]
    return name or None


class ClassBell:
    """What the idle-culler service adds: it reads the schedules, starts servers when their
    pre-warm comes, and tells the culler which servers to leave alone (or stop)."""

    def __init__(self, api_url: str, token: str, log: logging.Logger | None = None):
        import httpx  # here, not at the top: `mlworkshop class` reads only the schedules (0.1 s)

        self.api_url = api_url.rstrip("/")
        self.client = httpx.AsyncClient(
            headers={"Authorization": f"token {token}"}, timeout=httpx.Timeout(30.0)
        )
        self.log = log or logging.getLogger(__name__)
        self.by_user: dict[str, list[Schedule]] = {}  # member -> the classes of their groups
        self._started: set[tuple[str, str, str]] = set()  # (group, bell, user) this process began
        self._read = asyncio.Event()  # set once the schedules have been read

    async def tick(self) -> None:
        """Read the schedules; start what is due. Never raises: the culler must keep running."""
        try:
            groups = await self._groups()
            by_user: dict[str, list[Schedule]] = {}
            due: list[tuple[Schedule, list[str]]] = []
            now = utcnow()
            for group in groups:
                schedule = Schedule.from_group(group)
                if schedule is None:
                    continue
                for member in group.get("users") or []:
                    by_user.setdefault(member, []).append(schedule)
                if due_to_start(schedule, now):
                    due.append((schedule, list(group.get("users") or [])))
            self.by_user = by_user
            self._read.set()
            for schedule, members in due:
                await self._prewarm(schedule, members)
        except Exception as exc:  # noqa: BLE001 - logged; the next tick tries again
            self.log.warning("Class schedules not read this time: %s", exc)

    async def _prewarm(self, schedule: Schedule, members: list[str]) -> None:
        for name in members:
            key = (schedule.group, schedule.bell.isoformat(), name)
            if key in self._started:
                continue
            self._started.add(key)  # once per class: a student who stops theirs is not overruled
            response = await self.client.post(f"{self.api_url}/users/{quote(name)}/server")
            if response.status_code in (201, 202):
                self.log.info("Pre-warming %s's server for class %s", name, schedule.group)
            elif response.status_code != 400:  # 400: already running (or starting)
                self.log.warning(
                    "Could not pre-warm %s's server for class %s: %s %s",
                    name,
                    schedule.group,
                    response.status_code,
                    response.text[:200],
                )

    async def arbiter(self, *, inactive, inactive_limit, server, **_ignored) -> bool:
        """jupyterhub-idle-culler's cull_arbiter_hook: the class's word first, then the idle rule.
        Until the schedules have been read (the culler's first round runs at once, also right
        after a hub restart in the middle of a class) nothing is culled."""
        try:
            await asyncio.wait_for(self._read.wait(), TICK_SECONDS * 2)
        except TimeoutError:
            return False  # schedules unknown: keep the server, the next round decides
        name = user_of(server)
        schedules = self.by_user.get(name or "", [])
        decision = None
        if name and any(started_for(s, server) for s in schedules):
            user = await self.client.get(f"{self.api_url}/users/{quote(name)}")
            if user.status_code != 200:
                return False  # the hub did not answer: keep the server, the next round decides
            last = user.json().get("last_activity")
            decision = cull_decision(schedules, server, utcnow(), last)
        if decision is not None:
            return decision
        return inactive.total_seconds() >= inactive_limit

    async def _groups(self) -> list[dict[str, Any]]:
        """Every group, page by page (JupyterHub pages lists even when not asked to)."""
        groups: list[dict[str, Any]] = []
        offset = 0
        while True:
            response = await self.client.get(
                f"{self.api_url}/groups",
                params={"offset": offset, "limit": 200},
                headers={"Accept": "application/jupyterhub-pagination+json"},
            )
            response.raise_for_status()
            body = response.json()
            items = body["items"] if isinstance(body, dict) else body
            groups += items
            following = body.get("_pagination", {}).get("next") if isinstance(body, dict) else None
            if not following or not items:
                return groups
            offset = int(following["offset"])
