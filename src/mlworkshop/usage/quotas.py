"""Quotas: what a user may still use this week, and what that means at spawn and while running.

Pure functions (config + overrides + current use in, decision out), plus `current_use()` that
reads the store. Weeks start on Monday 00:00 UTC.

Precedence of a limit: an admin's per-user override (database) > usage.quotas.users.<name>
(config) > the most generous of the user's groups (an admin's group override replaces the
configured group value) > usage.quotas.default. Admins are exempt unless quotas.admins_exempt
is false.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from ..i18n import _

LIMIT_FIELDS = ("gpu_hours_per_week", "cpu_hours_per_week", "max_servers", "max_devices")


@dataclass(frozen=True)
class Limits:
    gpu_hours_per_week: float | None = None
    cpu_hours_per_week: float | None = None
    max_servers: int | None = None
    max_devices: int | None = None
    source: str = "usage.quotas.default"

    @property
    def unlimited(self) -> bool:
        return all(getattr(self, f) is None for f in LIMIT_FIELDS)


@dataclass(frozen=True)
class Used:
    gpu_hours: float = 0.0  # device-hours (GPU + NPU) this week, running servers up to now
    cpu_hours: float = 0.0  # CPU-hours used this week
    servers: int = 0  # running now
    devices: int = 0  # held now


@dataclass(frozen=True)
class Remaining:
    gpu_hours: float | None
    cpu_hours: float | None
    servers: int | None
    devices: int | None

    def as_dict(self) -> dict:
        return {
            "gpu_hours": self.gpu_hours,
            "cpu_hours": self.cpu_hours,
            "servers": self.servers,
            "devices": self.devices,
        }


def week_start(now: dt.datetime) -> dt.datetime:
    day = now.date() - dt.timedelta(days=now.weekday())
    return dt.datetime.combine(day, dt.time())


def _generous(values: Iterable[float | int | None]) -> float | int | None:
    """Among group values: no limit (None) beats any number, else the largest."""
    values = list(values)
    if any(v is None for v in values):
        return None
    return max(values)


def effective_limits(
    username: str,
    groups: Iterable[str],
    is_admin: bool,
    quotas: Any,
    overrides: Mapping[tuple[str, str], Any] | None = None,
) -> Limits:
    """`quotas` is the QuotasConfig; `overrides` maps ("user"|"group", name) to rows with the four
    limit fields and `unlimited` (QuotaOverride or anything shaped like it)."""
    overrides = overrides or {}
    user_override = overrides.get(("user", username))
    if user_override is not None and user_override.unlimited:
        return Limits(source=f"admin override for {username} (unlimited)")
    if is_admin and quotas.admins_exempt and user_override is None:
        return Limits(source="usage.quotas.admins_exempt (admin)")
    values = {f: getattr(quotas.default, f) for f in LIMIT_FIELDS}
    source = "usage.quotas.default"
    group_budgets: dict[str, dict[str, Any]] = {}
    for group in sorted(set(groups)):
        budget = quotas.groups.get(group)
        row = overrides.get(("group", group))
        if budget is None and row is None:
            continue
        given = (
            budget.model_fields_set if budget is not None else set()
        )  # unset: the default's value
        merged = {f: getattr(budget, f) if f in given else values[f] for f in LIMIT_FIELDS}
        if row is not None:
            if row.unlimited:
                merged = dict.fromkeys(LIMIT_FIELDS)
            else:
                merged.update(
                    {f: getattr(row, f) for f in LIMIT_FIELDS if getattr(row, f) is not None}
                )
        group_budgets[group] = merged
    if group_budgets:
        for f in LIMIT_FIELDS:
            values[f] = _generous(b[f] for b in group_budgets.values())
        source = "usage.quotas.groups." + "/".join(sorted(group_budgets))
    configured = quotas.users.get(username)
    if configured is not None:
        for f in LIMIT_FIELDS:
            if f in configured.model_fields_set:
                values[f] = getattr(configured, f)
        source = f"usage.quotas.users.{username}"
    if user_override is not None:
        values.update(
            {
                f: getattr(user_override, f)
                for f in LIMIT_FIELDS
                if getattr(user_override, f) is not None
            }
        )
        source = f"admin override for {username}"
    return Limits(**values, source=source)


def remaining(limits: Limits, used: Used) -> Remaining:
    def left(limit, use):
        return None if limit is None else max(0, limit - use)

    return Remaining(
        left(limits.gpu_hours_per_week, used.gpu_hours),
        left(limits.cpu_hours_per_week, used.cpu_hours),
        left(limits.max_servers, used.servers),
        left(limits.max_devices, used.devices),
    )


def _h(hours: float) -> str:
    if not hours:
        return "0"
    if abs(hours) < 0.1:
        return f"{hours:.2g}"  # 0.001, not 0
    return f"{hours:.2f}".rstrip("0").rstrip(".")


def describe_remaining(limits: Limits, used: Used) -> str:
    rem = remaining(limits, used)
    parts = []
    if limits.gpu_hours_per_week is not None:
        parts.append(
            _("GPU/NPU: {left} of {limit} device-hours left this week").format(
                left=_h(rem.gpu_hours), limit=_h(limits.gpu_hours_per_week)
            )
        )
    if limits.cpu_hours_per_week is not None:
        parts.append(
            _("CPU: {left} of {limit} CPU-hours left this week").format(
                left=_h(rem.cpu_hours), limit=_h(limits.cpu_hours_per_week)
            )
        )
    if limits.max_servers is not None:
        parts.append(
            _("servers: {left} of {limit} more may run").format(
                left=rem.servers, limit=limits.max_servers
            )
        )
    if limits.max_devices is not None:
        parts.append(
            _("devices: {left} of {limit} more may be held").format(
                left=rem.devices, limit=limits.max_devices
            )
        )
    return _("; ").join(parts) if parts else _("no limits")


def spawn_refusal(limits: Limits, used: Used, device_count: int) -> str | None:
    """None when a server with `device_count` accelerators may start; else the message for the
    user, which says what is left and where the limit comes from."""
    problems = []
    if limits.max_servers is not None and used.servers + 1 > limits.max_servers:
        problems.append(
            _("you already run {used} server(s) and may run {limit} at once").format(
                used=used.servers, limit=limits.max_servers
            )
        )
    if device_count:
        if limits.max_devices is not None and used.devices + device_count > limits.max_devices:
            problems.append(
                _("you hold {used} device(s) and may hold {limit} at once").format(
                    used=used.devices, limit=limits.max_devices
                )
            )
        if limits.gpu_hours_per_week is not None and used.gpu_hours >= limits.gpu_hours_per_week:
            problems.append(
                _("your GPU/NPU budget of {limit} device-hours this week is used up").format(
                    limit=_h(limits.gpu_hours_per_week)
                )
            )
    if limits.cpu_hours_per_week is not None and used.cpu_hours >= limits.cpu_hours_per_week:
        problems.append(
            _("your CPU budget of {limit} CPU-hours this week is used up").format(
                limit=_h(limits.cpu_hours_per_week)
            )
        )
    if not problems:
        return None
    hint = (
        _("Start a CPU-only server, or ask an administrator.")
        if device_count
        else _("Ask an administrator.")
    )
    return _(
        "Quota: {problems}. Remaining: {remaining} (limits from {source}; weeks start Monday "
        "00:00 UTC). {hint}"
    ).format(
        problems=_("; ").join(problems),
        remaining=describe_remaining(limits, used),
        source=limits.source,
        hint=hint,
    )


def allowed_profiles(profiles: Sequence[Any], rem: Remaining) -> list[Any]:
    """The spawn profiles still within budget: accelerator profiles disappear when the device-hours
    are used up or they would hold more devices than allowed. CPU-only profiles stay (a refusal at
    spawn says why when the server or CPU limits are reached)."""
    out = []
    for profile in profiles:
        count = getattr(profile, "count", 0) or 0
        if count:
            if rem.gpu_hours is not None and rem.gpu_hours <= 0:
                continue
            if rem.devices is not None and count > rem.devices:
                continue
        out.append(profile)
    return out


State = Literal["ok", "warn", "over"]


@dataclass(frozen=True)
class RunningVerdict:
    state: State
    enforce: bool  # "over" and this server is to be stopped after the grace period
    message: str


def running_verdict(
    limits: Limits, used: Used, warn_at: float, has_devices: bool, enforce_cpu_only: bool
) -> RunningVerdict:
    """What the sampler does with a running server: nothing, warn its user, or stop it after the
    grace period. CPU-only servers are stopped only when enforce_cpu_only is set."""
    fractions: list[tuple[float, str]] = []
    if has_devices and limits.gpu_hours_per_week is not None:
        budget = limits.gpu_hours_per_week
        fractions.append(
            (
                used.gpu_hours / budget if budget else float("inf"),
                _("GPU/NPU {used} of {budget} device-hours").format(
                    used=_h(used.gpu_hours), budget=_h(budget)
                ),
            )
        )
    if limits.cpu_hours_per_week is not None:
        budget = limits.cpu_hours_per_week
        fractions.append(
            (
                used.cpu_hours / budget if budget else float("inf"),
                _("CPU {used} of {budget} CPU-hours").format(
                    used=_h(used.cpu_hours), budget=_h(budget)
                ),
            )
        )
    if not fractions:
        return RunningVerdict("ok", False, "")
    worst, what = max(fractions, key=lambda pair: pair[0])
    if worst >= 1:
        enforce = has_devices or enforce_cpu_only
        return RunningVerdict(
            "over",
            enforce,
            _("Your weekly budget is used up ({what} used this week).").format(what=what),
        )
    if worst >= warn_at:
        return RunningVerdict(
            "warn",
            False,
            _("You have used {percent} of your weekly budget ({what}).").format(
                percent=f"{worst:.0%}", what=what
            ),
        )
    return RunningVerdict("ok", False, "")


# --- from the store ---------------------------------------------------------------------------
def current_use(store, username: str, now: dt.datetime | None = None) -> Used:
    from .models import utcnow
    from .reports import Rates, report

    now = now or utcnow()
    rows = report(
        store,
        week_start(now),
        now + dt.timedelta(seconds=1),
        "user",
        Rates(),
        usernames=[username],
        now=now,
    )
    running = store.open_sessions(username)
    row = rows[0] if rows else None
    return Used(
        gpu_hours=(row.gpu_hours + row.npu_hours) if row else 0.0,
        cpu_hours=row.cpu_hours if row else 0.0,
        servers=len(running),
        devices=sum(s.n_devices for s in running),
    )


def current_use_many(store, usernames, now: dt.datetime | None = None) -> dict[str, Used]:
    """current_use() for many users in one report query and one listing (the enforcer's round)."""
    from .models import utcnow
    from .reports import Rates, report

    now = now or utcnow()
    names = sorted(set(usernames))
    if not names:
        return {}
    rows = {
        r.key: r
        for r in report(
            store,
            week_start(now),
            now + dt.timedelta(seconds=1),
            "user",
            Rates(),
            usernames=names,
            now=now,
        )
    }
    running: dict[str, list] = {}
    for s in store.open_sessions():
        running.setdefault(s.username, []).append(s)
    out = {}
    for name in names:
        row = rows.get(name)
        mine = running.get(name, [])
        out[name] = Used(
            gpu_hours=(row.gpu_hours + row.npu_hours) if row else 0.0,
            cpu_hours=row.cpu_hours if row else 0.0,
            servers=len(mine),
            devices=sum(s.n_devices for s in mine),
        )
    return out


def limits_for(store, cfg_usage, username: str, groups: Iterable[str], is_admin: bool) -> Limits:
    return effective_limits(username, groups, is_admin, cfg_usage.quotas, store.overrides())


def with_source(limits: Limits, source: str) -> Limits:
    return replace(limits, source=source)
