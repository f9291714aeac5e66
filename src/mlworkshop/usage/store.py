"""The usage store: sessions opened and closed by the hub, samples added by the sampler, quota
overrides and rates. Synchronous SQLAlchemy; the hub calls it from worker threads.

SQLite (default, WAL) and PostgreSQL. The schema is created and upgraded by Alembic
(`upgrade head`) the first time a store is opened in a process.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import func, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from ..db import USAGE_SCHEMA, SQLiteMode
from ..db import make_engine as _make_engine
from ..db import migrate as _migrate
from .models import QuotaOverride, Rate, Sample, UsageSession, utcnow


def normalize_url(url: str) -> str:
    """postgresql:// means psycopg 3 here (installed everywhere; psycopg2 is optional)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


# A usage record survives a power cut (a full fsync per commit; the sampler commits once a round);
# WAL: the dashboards read while the sampler writes.
SQLITE = SQLiteMode(synchronous="FULL", wal=True, foreign_keys=True, threads=True)


def make_engine(url: str) -> Engine:
    return _make_engine(normalize_url(url), SQLITE)


def migrate(engine: Engine) -> None:
    """`alembic upgrade head` of the usage tables on this database (once per process and URL)."""
    _migrate(engine, USAGE_SCHEMA)


@dataclass(frozen=True)
class SessionInfo:
    id: int
    username: str
    server_name: str
    backend: str
    profile: str | None
    device_kind: str | None
    n_devices: int
    devices: list[str]
    groups: list[str]
    pid: int | None
    container_id: str | None
    started_at: dt.datetime
    ended_at: dt.datetime | None
    end_reason: str | None
    last_seen: dt.datetime | None
    cpu_total: float
    stop_requested: str | None
    warned_at: dt.datetime | None
    over_limit_at: dt.datetime | None

    @classmethod
    def of(cls, row: UsageSession) -> SessionInfo:
        return cls(
            row.id,
            row.username,
            row.server_name,
            row.backend,
            row.profile,
            row.device_kind,
            row.n_devices,
            json.loads(row.devices or "[]"),
            json.loads(row.groups or "[]"),
            row.pid,
            row.container_id,
            row.started_at,
            row.ended_at,
            row.end_reason,
            row.last_seen,
            row.cpu_total,
            row.stop_requested,
            row.warned_at,
            row.over_limit_at,
        )

    def as_dict(self) -> dict:
        iso = lambda t: t.isoformat() + "Z" if t else None  # noqa: E731
        return {
            "id": self.id,
            "user": self.username,
            "server": self.server_name,
            "backend": self.backend,
            "profile": self.profile,
            "device_kind": self.device_kind,
            "n_devices": self.n_devices,
            "devices": self.devices,
            "groups": self.groups,
            "start": iso(self.started_at),
            "end": iso(self.ended_at),
            "end_reason": self.end_reason,
            "last_seen": iso(self.last_seen),
        }


@dataclass(frozen=True)
class SampleIn:
    session_id: int
    ts: dt.datetime
    cpu_total: float  # cumulative CPU seconds of the whole process tree (or container)
    mem_bytes: int
    gpu_util: float | None = None
    gpu_mem_bytes: int | None = None
    # CPU seconds in cpu_total of the session's processes that have exited. None: the sampler has
    # no history of them (the hub's last sample as it stops a server): cpu_total is what runs now,
    # and the store adds what the session's earlier samples said had exited.
    cpu_departed: float | None = 0.0


class UsageStore:
    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        migrate(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def session(self) -> Session:
        return self._session()

    # --- sessions -------------------------------------------------------------------------
    def open_session(
        self,
        username: str,
        server_name: str = "",
        *,
        backend: str = "local",
        profile: str | None = None,
        devices: Sequence[str] = (),
        device_kind: str | None = None,
        n_devices: int = 0,
        pid: int | None = None,
        container_id: str | None = None,
        groups: Iterable[str] = (),
        started_at: dt.datetime | None = None,
    ) -> int:
        """A new open session. One left open for the same server (a start whose stop was never
        recorded) is closed first as `lost`."""
        now = started_at or utcnow()
        with self.session() as db, db.begin():
            for old in db.scalars(self._open_q(username, server_name)):
                self._close_row(old, "lost", self._best_end(old, now))
            row = UsageSession(
                username=username,
                server_name=server_name,
                backend=backend,
                profile=profile,
                device_kind=device_kind,
                n_devices=n_devices,
                devices=json.dumps(list(devices)),
                groups=json.dumps(sorted(set(groups))),
                pid=pid,
                container_id=container_id,
                started_at=now,
                last_seen=now,
                cpu_total=0.0,
            )
            db.add(row)
            db.flush()
            return row.id

    @staticmethod
    def _open_q(username: str, server_name: str):
        return select(UsageSession).where(
            UsageSession.username == username,
            UsageSession.server_name == server_name,
            UsageSession.ended_at.is_(None),
        )

    @staticmethod
    def _best_end(row: UsageSession, fallback: dt.datetime) -> dt.datetime:
        """The last moment the server is known to have run: its last sample, else its start."""
        best = row.last_seen or row.started_at
        return min(best, fallback) if fallback else best

    @staticmethod
    def _close_row(row: UsageSession, reason: str, ended_at: dt.datetime) -> None:
        row.ended_at = max(ended_at, row.started_at)
        row.end_reason = (row.stop_requested or reason) if reason in ("stopped", "died") else reason

    def close_session(
        self,
        username: str,
        server_name: str = "",
        reason: str = "stopped",
        ended_at: dt.datetime | None = None,
    ) -> SessionInfo | None:
        """Close the open session of this server. `reason` lost: ended at the best end time known.
        A stop the usage service asked for (quota) keeps that reason."""
        now = ended_at or utcnow()
        with self.session() as db, db.begin():
            rows = list(db.scalars(self._open_q(username, server_name)))
            for row in rows:
                end = self._best_end(row, now) if reason == "lost" else now
                self._close_row(row, reason, end)
            return SessionInfo.of(rows[-1]) if rows else None

    def close_lost(
        self, alive: Iterable[tuple[str, str]], now: dt.datetime | None = None
    ) -> list[SessionInfo]:
        """Close every open session whose (user, server) is not in `alive` as `lost`."""
        alive = set(alive)
        now = now or utcnow()
        closed = []
        with self.session() as db, db.begin():
            for row in db.scalars(select(UsageSession).where(UsageSession.ended_at.is_(None))):
                if (row.username, row.server_name) not in alive:
                    self._close_row(row, "lost", self._best_end(row, now))
                    closed.append(SessionInfo.of(row))
        return closed

    def request_stop(self, session_id: int, reason: str) -> None:
        with self.session() as db, db.begin():
            db.execute(
                update(UsageSession)
                .where(UsageSession.id == session_id)
                .values(stop_requested=reason)
            )

    def mark(self, session_id: int, **values) -> None:
        """Set warned_at / over_limit_at (or clear them with None)."""
        allowed = {"warned_at", "over_limit_at"}
        assert set(values) <= allowed, values
        with self.session() as db, db.begin():
            db.execute(update(UsageSession).where(UsageSession.id == session_id).values(**values))

    def open_sessions(self, username: str | None = None) -> list[SessionInfo]:
        q = (
            select(UsageSession)
            .where(UsageSession.ended_at.is_(None))
            .order_by(UsageSession.started_at)
        )
        if username is not None:
            q = q.where(UsageSession.username == username)
        with self.session() as db:
            return [SessionInfo.of(r) for r in db.scalars(q)]

    def get_session(self, session_id: int) -> SessionInfo | None:
        with self.session() as db:
            row = db.get(UsageSession, session_id)
            return SessionInfo.of(row) if row else None

    def sessions(
        self,
        username: str | None = None,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[SessionInfo]:
        """Sessions overlapping [start, end), newest first."""
        q = select(UsageSession).order_by(UsageSession.started_at.desc(), UsageSession.id.desc())
        if username is not None:
            q = q.where(UsageSession.username == username)
        if end is not None:
            q = q.where(UsageSession.started_at < end)
        if start is not None:
            q = q.where(or_(UsageSession.ended_at.is_(None), UsageSession.ended_at > start))
        with self.session() as db:
            return [SessionInfo.of(r) for r in db.scalars(q.limit(limit).offset(offset))]

    def end_session(
        self, session_id: int, reason: str, ended_at: dt.datetime | None = None
    ) -> SessionInfo | None:
        """Close a session by id (the API's PUT /sessions/{id}/end). Already closed: unchanged."""
        with self.session() as db, db.begin():
            row = db.get(UsageSession, session_id)
            if row is None:
                return None
            if row.ended_at is None:
                self._close_row(row, reason, ended_at or utcnow())
            return SessionInfo.of(row)

    # --- samples --------------------------------------------------------------------------
    def add_samples(self, samples: Sequence[SampleIn]) -> int:
        """One transaction for a whole sampling round. CPU time is stored as the increase since
        the session's previous sample (a restart of the sampler loses nothing)."""
        if not samples:
            return 0
        rows = []
        with self.session() as db, db.begin():
            ids = [s.session_id for s in samples]
            sessions = {
                r.id: r for r in db.scalars(select(UsageSession).where(UsageSession.id.in_(ids)))
            }
            for s in samples:
                row = sessions.get(s.session_id)
                if row is None or row.ended_at is not None:
                    continue
                since = row.last_seen or row.started_at
                interval = max(0.0, (s.ts - since).total_seconds())
                total = s.cpu_total + row.cpu_departed if s.cpu_departed is None else s.cpu_total
                cpu = max(0.0, total - row.cpu_total)
                rows.append(
                    {
                        "session_id": row.id,
                        "ts": s.ts,
                        "interval_s": interval,
                        "cpu_seconds": cpu,
                        "mem_bytes": int(s.mem_bytes),
                        "gpu_util": s.gpu_util,
                        "gpu_mem_bytes": s.gpu_mem_bytes,
                    }
                )
                row.cpu_total = max(row.cpu_total, total)
                if s.cpu_departed is not None:
                    row.cpu_departed = s.cpu_departed
                row.last_seen = max(s.ts, since)
            if rows:
                db.execute(Sample.__table__.insert(), rows)
        return len(rows)

    def last_sample(self, username: str, server_name: str, sample: SampleIn) -> int:
        """The sample the hub takes as it stops a server (session_id 0: this server's open
        session), so the CPU used since the sampler's last round is not lost."""
        with self.session() as db:
            row = db.scalar(
                self._open_q(username, server_name)
                .order_by(UsageSession.started_at.desc())
                .limit(1)
            )
        if row is None:
            return 0
        return self.add_samples([replace(sample, session_id=row.id)])

    def samples(self, session_id: int, limit: int = 10000) -> list[dict]:
        q = select(Sample).where(Sample.session_id == session_id).order_by(Sample.ts).limit(limit)
        with self.session() as db:
            return [
                {
                    "ts": r.ts.isoformat() + "Z",
                    "interval_s": r.interval_s,
                    "cpu_seconds": r.cpu_seconds,
                    "mem_bytes": r.mem_bytes,
                    "gpu_util": r.gpu_util,
                    "gpu_mem_bytes": r.gpu_mem_bytes,
                }
                for r in db.scalars(q)
            ]

    def latest_samples(self, session_ids: Sequence[int]) -> dict[int, dict]:
        if not session_ids:
            return {}
        latest = (
            select(Sample.session_id, func.max(Sample.ts).label("ts"))
            .where(Sample.session_id.in_(session_ids))
            .group_by(Sample.session_id)
            .subquery()
        )
        q = select(Sample).join(
            latest, (Sample.session_id == latest.c.session_id) & (Sample.ts == latest.c.ts)
        )
        with self.session() as db:
            return {
                r.session_id: {
                    "ts": r.ts,
                    "cpu_percent": 100.0 * r.cpu_seconds / r.interval_s if r.interval_s else 0.0,
                    "mem_bytes": r.mem_bytes,
                    "gpu_util": r.gpu_util,
                    "gpu_mem_bytes": r.gpu_mem_bytes,
                }
                for r in db.scalars(q)
            }

    # --- quota overrides and rates ----------------------------------------------------------
    def overrides(self) -> dict[tuple[str, str], QuotaOverride]:
        with self.session() as db:
            return {(r.scope, r.name): r for r in db.scalars(select(QuotaOverride))}

    def set_override(
        self,
        scope: str,
        name: str,
        set_by: str,
        *,
        unlimited: bool = False,
        gpu_hours_per_week: float | None = None,
        cpu_hours_per_week: float | None = None,
        max_servers: int | None = None,
        max_devices: int | None = None,
    ) -> None:
        assert scope in ("user", "group"), scope
        with self.session() as db, db.begin():
            row = db.scalar(
                select(QuotaOverride).where(
                    QuotaOverride.scope == scope, QuotaOverride.name == name
                )
            )
            if row is None:
                row = QuotaOverride(scope=scope, name=name)
                db.add(row)
            row.unlimited = int(unlimited)
            row.gpu_hours_per_week, row.cpu_hours_per_week = gpu_hours_per_week, cpu_hours_per_week
            row.max_servers, row.max_devices = max_servers, max_devices
            row.set_by, row.set_at = set_by, utcnow()

    def clear_override(self, scope: str, name: str) -> bool:
        with self.session() as db, db.begin():
            row = db.scalar(
                select(QuotaOverride).where(
                    QuotaOverride.scope == scope, QuotaOverride.name == name
                )
            )
            if row is None:
                return False
            db.delete(row)
            return True

    def sync_rates(self, rates, now: dt.datetime | None = None) -> None:
        """Record the configured rates when they differ from the latest recorded ones."""
        values = {
            k: getattr(rates, k)
            for k in ("cpu_hour", "mem_gib_hour", "gpu_hour", "npu_hour", "currency")
        }
        with self.session() as db, db.begin():
            latest = db.scalar(
                select(Rate).order_by(Rate.valid_from.desc(), Rate.id.desc()).limit(1)
            )
            if latest is None or any(getattr(latest, k) != v for k, v in values.items()):
                db.add(Rate(valid_from=now or utcnow(), **values))

    def rates(self) -> list[Rate]:
        with self.session() as db:
            return list(db.scalars(select(Rate).order_by(Rate.valid_from, Rate.id)))


class StoreUnavailable(Exception):
    """The usage database does not answer; str() says why (the service answers 503)."""


class LazyStore:
    """A UsageStore opened on first use and retried every `retry_s` seconds while the database is
    down, so the usage service starts (and the hub with it) even then. Attribute access forwards
    to the store or raises StoreUnavailable."""

    def __init__(self, url: str, on_open=None, retry_s: float = 5.0):
        self.url, self.on_open, self.retry_s = url, on_open, retry_s
        self._store: UsageStore | None = None
        self._failed_at = 0.0
        self._error = ""
        self._lock = threading.Lock()

    def get(self) -> UsageStore:
        import time

        if self._store is not None:
            return self._store
        with self._lock:
            if self._store is not None:
                return self._store
            if self._failed_at and time.monotonic() - self._failed_at < self.retry_s:
                raise StoreUnavailable(self._error)
            try:
                store = UsageStore(self.url)
                if self.on_open is not None:
                    self.on_open(store)
            except Exception as exc:  # noqa: BLE001 - any driver error means "not now"
                self._failed_at = time.monotonic()
                self._error = f"the usage database does not answer ({type(exc).__name__})"
                raise StoreUnavailable(self._error) from None
            self._store = store
            return store

    def __getattr__(self, name: str):
        return getattr(self.get(), name)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
