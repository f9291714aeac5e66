"""Reports: CPU-hours, memory GiB-hours, GPU/NPU device-hours and cost per user, group or day.

Two steps: SQL sums the samples per (session, day) (the big table never leaves the database),
then `aggregate()` -- pure, tested on hand-computed fixtures -- adds device-hours from the
sessions' spans and applies the rates.

- CPU-hours: CPU time the server's processes actually used (sum of the samples' cpu_seconds).
- Memory GiB-hours: resident memory x the time it was held (sum of mem_bytes x interval_s).
- Device-hours: devices held exclusively x the session's time inside the window (running
  sessions count up to `now`).
Samples count in the window (and day) of their timestamp; sessions are cut at the window's and
days' edges. Days are UTC.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

from sqlalchemy import func, or_, select

from .models import Sample, UsageSession, utcnow

GIB = 1024**3
By = Literal["user", "group", "day"]
NO_GROUP = "(no group)"


@dataclass(frozen=True)
class Rates:
    cpu_hour: float = 0.0
    mem_gib_hour: float = 0.0
    gpu_hour: float = 0.0
    npu_hour: float = 0.0
    currency: str = "EUR"

    @classmethod
    def of(cls, cfg) -> Rates:
        return cls(cfg.cpu_hour, cfg.mem_gib_hour, cfg.gpu_hour, cfg.npu_hour, cfg.currency)


@dataclass(frozen=True)
class SessionFacts:
    id: int
    username: str
    groups: tuple[str, ...]
    device_kind: str | None
    n_devices: int
    started_at: dt.datetime
    ended_at: dt.datetime | None


@dataclass(frozen=True)
class Bucket:
    """The samples of one session on one day, summed by SQL."""

    session_id: int
    day: dt.date
    cpu_seconds: float
    mem_byte_seconds: float


@dataclass
class ReportRow:
    key: str
    sessions: int = 0
    cpu_hours: float = 0.0
    mem_gib_hours: float = 0.0
    gpu_hours: float = 0.0
    npu_hours: float = 0.0
    cost: float = 0.0
    _session_ids: set = field(default_factory=set, repr=False, compare=False)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("_session_ids")
        return d


def _day_edges(
    start: dt.datetime, end: dt.datetime
) -> Iterable[tuple[dt.date, dt.datetime, dt.datetime]]:
    day = start.date()
    while True:
        lo = dt.datetime.combine(day, dt.time())
        hi = lo + dt.timedelta(days=1)
        if lo >= end:
            return
        yield day, max(lo, start), min(hi, end)
        day += dt.timedelta(days=1)


def _keys(by: By, facts: SessionFacts, day: dt.date | None) -> list[str]:
    if by == "user":
        return [facts.username]
    if by == "group":
        return list(facts.groups) or [NO_GROUP]
    return [day.isoformat()]


def aggregate(
    sessions: Sequence[SessionFacts],
    buckets: Sequence[Bucket],
    start: dt.datetime,
    end: dt.datetime,
    by: By,
    rates: Rates,
    now: dt.datetime | None = None,
) -> list[ReportRow]:
    """Rows sorted by key. `buckets` must already be limited to samples with start <= ts < end."""
    now = now or utcnow()
    by_id = {s.id: s for s in sessions}
    rows: dict[str, ReportRow] = {}

    def row(key: str) -> ReportRow:
        if key not in rows:
            rows[key] = ReportRow(key)
        return rows[key]

    for facts in sessions:
        lo = max(facts.started_at, start)
        hi = min(facts.ended_at or now, end)
        if hi <= lo and not (facts.started_at >= start and facts.started_at < end):
            continue
        if by == "day":
            spans = [(d, a, b) for d, a, b in _day_edges(lo, hi)] or [(lo.date(), lo, lo)]
        else:
            spans = [(None, lo, hi)]
        for day, a, b in spans:
            hours = max(0.0, (b - a).total_seconds()) / 3600 * facts.n_devices
            for key in _keys(by, facts, day):
                r = row(key)
                r._session_ids.add(facts.id)
                if facts.device_kind == "ascend":
                    r.npu_hours += hours
                elif facts.n_devices:
                    r.gpu_hours += hours
    for bucket in buckets:
        facts = by_id.get(bucket.session_id)
        if facts is None:
            continue
        for key in _keys(by, facts, bucket.day):
            r = row(key)
            r._session_ids.add(facts.id)
            r.cpu_hours += bucket.cpu_seconds / 3600
            r.mem_gib_hours += bucket.mem_byte_seconds / GIB / 3600
    for r in rows.values():
        r.sessions = len(r._session_ids)
        r.cost = (
            r.cpu_hours * rates.cpu_hour
            + r.mem_gib_hours * rates.mem_gib_hour
            + r.gpu_hours * rates.gpu_hour
            + r.npu_hours * rates.npu_hour
        )
    return [rows[k] for k in sorted(rows)]


def totals(rows: Sequence[ReportRow]) -> ReportRow:
    total = ReportRow("total")
    for r in rows:
        total._session_ids |= r._session_ids
        total.cpu_hours += r.cpu_hours
        total.mem_gib_hours += r.mem_gib_hours
        total.gpu_hours += r.gpu_hours
        total.npu_hours += r.npu_hours
        total.cost += r.cost
    total.sessions = len(total._session_ids)  # distinct: a session spanning two days counts once
    return total


# --- from the database ------------------------------------------------------------------------
def load_facts(
    db, start: dt.datetime, end: dt.datetime, usernames: Sequence[str] | None = None
) -> list[SessionFacts]:
    import json

    q = select(
        UsageSession.id,
        UsageSession.username,
        UsageSession.groups,
        UsageSession.device_kind,
        UsageSession.n_devices,
        UsageSession.started_at,
        UsageSession.ended_at,
    ).where(
        UsageSession.started_at < end,
        or_(UsageSession.ended_at.is_(None), UsageSession.ended_at >= start),
    )
    if usernames is not None:
        q = q.where(UsageSession.username.in_(list(usernames)))
    return [
        SessionFacts(i, u, tuple(json.loads(g or "[]")), k, n, s, e)
        for i, u, g, k, n, s, e in db.execute(q)
    ]


def load_buckets(
    db, start: dt.datetime, end: dt.datetime, session_ids: Sequence[int] | None = None
) -> list[Bucket]:
    day = func.date(Sample.ts)
    q = (
        select(
            Sample.session_id,
            day.label("day"),
            func.sum(Sample.cpu_seconds),
            func.sum(Sample.mem_bytes * Sample.interval_s),
        )
        .where(Sample.ts >= start, Sample.ts < end)
        .group_by(Sample.session_id, day)
    )
    if session_ids is not None:
        q = q.where(Sample.session_id.in_(list(session_ids)))
    out = []
    for sid, d, cpu, mem in db.execute(q):
        if isinstance(d, str):
            d = dt.date.fromisoformat(d)
        elif isinstance(d, dt.datetime):
            d = d.date()
        out.append(Bucket(sid, d, float(cpu or 0.0), float(mem or 0.0)))
    return out


def report(
    store,
    start: dt.datetime,
    end: dt.datetime,
    by: By,
    rates: Rates,
    usernames: Sequence[str] | None = None,
    now: dt.datetime | None = None,
) -> list[ReportRow]:
    with store.session() as db:
        facts = load_facts(db, start, end, usernames)
        ids = None if usernames is None else [f.id for f in facts]
        buckets = load_buckets(db, start, end, ids)
    return aggregate(facts, buckets, start, end, by, rates, now)


COLUMNS = ("key", "sessions", "cpu_hours", "mem_gib_hours", "gpu_hours", "npu_hours", "cost")


def to_csv(rows: Sequence[ReportRow], by: str, currency: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        [by, "sessions", "cpu_hours", "mem_gib_hours", "gpu_hours", "npu_hours", f"cost_{currency}"]
    )
    for r in rows:
        writer.writerow(
            [
                r.key,
                r.sessions,
                f"{r.cpu_hours:.4f}",
                f"{r.mem_gib_hours:.4f}",
                f"{r.gpu_hours:.4f}",
                f"{r.npu_hours:.4f}",
                f"{r.cost:.2f}",
            ]
        )
    return buffer.getvalue()
