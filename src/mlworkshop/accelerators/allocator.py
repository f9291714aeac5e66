"""Exclusive hand-out of devices, kept in the hub's database (table mlw_device_allocations).

One row per (device, slot) held by a server. The row is the truth: a restarted hub reads who holds
what from the table, so a busy device is never handed out twice. Rows go away when the hub calls
`release()` (server stopped or culled) or `reconcile()` (server died, hub was down meanwhile).

Atomicity: each allocation is one transaction that reads the free slots and inserts its rows
while holding the database's write lock: `BEGIN IMMEDIATE` on SQLite, `SELECT ... FOR UPDATE` on
a one-row lock table elsewhere. A unique constraint on (kind, device_index, slot) backs this up;
a violation (which the lock should make impossible) is retried.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import DateTime, Integer, String, UniqueConstraint, delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ..db import HUB_SCHEMA, SQLiteMode, migrate
from ..db import make_engine as _make_engine
from ..i18n import _, format_month_day, ngettext
from .inventory import KIND_LABEL, Device


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Allocation(Base):
    __tablename__ = "mlw_device_allocations"
    __table_args__ = (UniqueConstraint("kind", "device_index", "slot", name="uq_mlw_device_slot"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    device_index: Mapped[int] = mapped_column(Integer)
    slot: Mapped[int] = mapped_column(Integer, default=0)
    username: Mapped[str] = mapped_column(String(255), index=True)
    server_name: Mapped[str] = mapped_column(String(255), default="")
    taken_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class AllocationLock(Base):
    """One row; `SELECT ... FOR UPDATE` on it serialises allocations on PostgreSQL/MySQL."""

    __tablename__ = "mlw_device_allocation_lock"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)


# --- errors -----------------------------------------------------------------------------
def since_text(when: dt.datetime, now: dt.datetime | None = None) -> str:
    now = now or utcnow()
    if when.date() == now.date():
        return when.strftime("%H:%M UTC")
    return f"{format_month_day(when)} {when:%H:%M} UTC"


@dataclass(frozen=True)
class Holder:
    username: str
    server_name: str
    slot: int
    taken_at: dt.datetime

    @property
    def who(self) -> str:
        return self.username + (f"/{self.server_name}" if self.server_name else "")


@dataclass(frozen=True)
class DeviceUsage:
    device: Device
    holders: tuple[Holder, ...]
    slots: int

    @property
    def free_slots(self) -> int:
        return max(0, self.slots - len(self.holders))


class NoDeviceFree(Exception):
    """Not enough free devices; str() says how many exist, which are busy, by whom, since when
    (in the language of the request that asked, mlworkshop/i18n.py)."""

    def __init__(self, kind: str, wanted: int, usage: Sequence[DeviceUsage]):
        self.kind, self.wanted, self.usage = kind, wanted, list(usage)
        label = KIND_LABEL.get(kind, kind)
        total = len(self.usage)
        busy = [u for u in self.usage if u.free_slots == 0]
        free = total - len(busy)
        details = ", ".join(
            _("{device} by {holders}").format(
                device=u.device.label,
                holders=_(" and ").join(
                    _("{who} since {since}").format(who=h.who, since=since_text(h.taken_at))
                    for h in sorted(u.holders, key=lambda h: h.taken_at)
                ),
            )
            for u in self.usage
            if u.holders
        )
        if total == 0:
            text = _("This server has no {label}s.").format(label=label)
        elif free == 0:
            every = {
                1: _("The {label} is in use ({details})."),
                2: _("Both {label}s are in use ({details})."),
            }.get(total, _("All {total} {label}s are in use ({details})."))
            text = every.format(label=label, total=total, details=details)
        else:
            asked = ngettext(
                "You asked for {n} {label}", "You asked for {n} {label}s", wanted
            ).format(n=wanted, label=label)
            only = ngettext(
                "but only {free} of {total} is free", "but only {free} of {total} are free", free
            ).format(free=free, total=total)
            text = f"{asked} {only} ({details})."
        hint = (
            _("Try again when one is free, or start a CPU-only server.")
            if total
            else _("Start a CPU-only server.")
        )
        super().__init__(f"{text} {hint}")


class OverLimit(Exception):
    """The user would hold more devices than allowed; str() names the limit and where it is set."""

    def __init__(self, username: str, limit: Limit, holding: int, wanted: int):
        self.username, self.limit, self.holding, self.wanted = username, limit, holding, wanted
        if limit.max_devices == 0:
            text = _("{user} may not use accelerators (limit 0, set by {source}).").format(
                user=username, source=limit.source
            )
        else:
            text = ngettext(
                "{user} may hold at most {n} device at once (set by {source}); they hold "
                "{holding} and asked for {wanted} more.",
                "{user} may hold at most {n} devices at once (set by {source}); they hold "
                "{holding} and asked for {wanted} more.",
                limit.max_devices,
            ).format(
                user=username,
                n=limit.max_devices,
                source=limit.source,
                holding=holding,
                wanted=wanted,
            )
            if holding:
                text += " " + _("Stop a server that uses one first.")
        super().__init__(text + " " + _("Ask an admin if you need more."))


@dataclass(frozen=True)
class Limit:
    """The most devices one user may hold at once (None: no limit) and the config key behind it."""

    max_devices: int | None
    source: str


# --- the allocator ----------------------------------------------------------------------
# Every transaction takes the write lock first (BEGIN IMMEDIATE): see the module docstring.
# Durability: the process's (NORMAL in the hub): an allocation a power cut loses belonged to a
# server the power cut stopped too.
SQLITE = SQLiteMode(synchronous=None, begin_immediate=True)


def make_engine(db_url: str) -> Engine:
    """Our own engine on the hub's database."""
    return _make_engine(db_url, SQLITE, pool_size=8, max_overflow=16)


Alive = Callable[[str, str], bool]


class Allocator:
    """Hands out whole devices (or slots of them) to servers, tracked in the database."""

    RETRIES = 20

    def __init__(self, db_url: str, devices: Sequence[Device], slots_per_device: int = 1):
        if slots_per_device < 1:
            raise ValueError("slots_per_device must be at least 1")
        self.db_url = db_url
        self.devices = sorted(devices)
        self.slots = slots_per_device
        self.engine = make_engine(db_url)
        self._sqlite = self.engine.dialect.name == "sqlite"
        migrate(self.engine, HUB_SCHEMA)
        if not self._sqlite:
            self._ensure_lock_row()

    def close(self) -> None:
        self.engine.dispose()

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def _ensure_lock_row(self) -> None:
        try:
            with self._session() as db, db.begin():
                if db.get(AllocationLock, 1) is None:
                    db.add(AllocationLock(id=1))
        except IntegrityError:
            pass  # another process created it first

    def _lock(self, db: Session) -> None:
        if not self._sqlite:
            db.execute(select(AllocationLock).where(AllocationLock.id == 1).with_for_update())

    # --- reading ------------------------------------------------------------------------
    def _rows(self, db: Session) -> list[Allocation]:
        return list(
            db.scalars(
                select(Allocation).order_by(
                    Allocation.kind, Allocation.device_index, Allocation.slot
                )
            )
        )

    def _usage(self, rows: Sequence[Allocation], kind: str | None = None) -> list[DeviceUsage]:
        by_key: dict[tuple[str, int], list[Holder]] = {}
        for row in rows:
            by_key.setdefault((row.kind, row.device_index), []).append(
                Holder(row.username, row.server_name, row.slot, row.taken_at)
            )
        return [
            DeviceUsage(d, tuple(by_key.get(d.key, ())), self.slots)
            for d in self.devices
            if kind is None or d.kind == kind
        ]

    def usage(self, kind: str | None = None) -> list[DeviceUsage]:
        """Every known device with who holds it (for messages, the CLI and the profiles)."""
        with self._session() as db, db.begin():
            return self._usage(self._rows(db), kind)

    def free_count(self, kind: str) -> int:
        """Devices of `kind` with at least one free slot (how many a new server could get)."""
        return sum(1 for u in self.usage(kind) if u.free_slots > 0)

    def held_by(self, username: str, server_name: str = "") -> list[Device]:
        with self._session() as db, db.begin():
            rows = db.scalars(
                select(Allocation).where(
                    Allocation.username == username, Allocation.server_name == server_name
                )
            )
            return self._devices_of(rows)

    def held_by_user(self, username: str) -> dict[str, list[Device]]:
        """server name -> devices, for every server of this user."""
        with self._session() as db, db.begin():
            rows = list(db.scalars(select(Allocation).where(Allocation.username == username)))
        servers: dict[str, list[Allocation]] = {}
        for row in rows:
            servers.setdefault(row.server_name, []).append(row)
        return {name: self._devices_of(group) for name, group in servers.items()}

    def _devices_of(self, rows) -> list[Device]:
        known = {d.key: d for d in self.devices}
        return sorted(
            {
                known.get((r.kind, r.device_index), Device(r.kind, r.device_index, source="db"))
                for r in rows
            }
        )

    # --- writing ------------------------------------------------------------------------
    def allocate(
        self, username: str, server_name: str, kind: str, count: int, limit: Limit | None = None
    ) -> list[Device]:
        """`count` distinct devices of `kind` for this server, least-loaded first; all or nothing.

        Idempotent: a server that already holds `count` devices of `kind` gets them back (a retried
        spawn); a server holding something else has that replaced. `limit` is checked inside the
        same transaction, so two spawns of one user cannot both slip under it.
        Raises NoDeviceFree or OverLimit; nothing is written then.
        """
        if count < 0:
            raise ValueError("count must be 0 or more")
        for attempt in range(self.RETRIES):
            try:
                with self._session() as db, db.begin():
                    self._lock(db)
                    return self._allocate(db, username, server_name, kind, count, limit)
            except IntegrityError:
                time.sleep(0.01 * (attempt + 1))  # a concurrent writer won a slot; read again
            except OperationalError as exc:
                if "locked" not in str(exc).lower() or attempt == self.RETRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise RuntimeError(
            f"could not allocate {count} {kind} device(s) after {self.RETRIES} attempts"
        )

    def _allocate(
        self,
        db: Session,
        username: str,
        server_name: str,
        kind: str,
        count: int,
        limit: Limit | None,
    ) -> list[Device]:
        rows = self._rows(db)
        mine = [r for r in rows if r.username == username and r.server_name == server_name]
        if mine and count and all(r.kind == kind for r in mine) and len(mine) == count:
            return self._devices_of(mine)
        for row in mine:
            db.delete(row)
        db.flush()  # deletes before inserts: a freed slot may be taken again below
        others = [r for r in rows if not (r.username == username and r.server_name == server_name)]
        if count == 0:
            return []
        if limit is not None and limit.max_devices is not None:
            holding = len(
                {(r.kind, r.device_index, r.server_name) for r in others if r.username == username}
            )
            if holding + count > limit.max_devices:
                raise OverLimit(username, limit, holding, count)
        usage = self._usage(others, kind)
        free = [u for u in usage if u.free_slots > 0]
        if len(free) < count:
            raise NoDeviceFree(kind, count, usage)
        free.sort(key=lambda u: (len(u.holders), u.device.index))  # least-loaded first
        now = utcnow()
        chosen = []
        for u in free[:count]:
            taken = {h.slot for h in u.holders}
            slot = next(s for s in range(self.slots) if s not in taken)
            db.add(
                Allocation(
                    kind=kind,
                    device_index=u.device.index,
                    slot=slot,
                    username=username,
                    server_name=server_name,
                    taken_at=now,
                )
            )
            chosen.append(u.device)
        db.flush()  # a unique-constraint violation surfaces here, inside the retry loop
        return sorted(chosen)

    def release(self, username: str, server_name: str = "") -> list[Device]:
        """Free what this server holds (server stopped or culled). Returns what was freed."""
        with self._session() as db, db.begin():
            self._lock(db)
            rows = list(
                db.scalars(
                    select(Allocation).where(
                        Allocation.username == username, Allocation.server_name == server_name
                    )
                )
            )
            freed = self._devices_of(rows)
            db.execute(
                delete(Allocation).where(
                    Allocation.username == username, Allocation.server_name == server_name
                )
            )
        return freed

    def reconcile(
        self, alive: Alive | Collection[tuple[str, str]]
    ) -> list[tuple[str, str, list[Device]]]:
        """Free the devices of servers that are not really running (crashed, or stopped while the
        hub was down). `alive(user, server)` says whether a server runs; a collection of
        (user, server) pairs is accepted too. Returns [(user, server, freed devices)]."""
        check: Alive = (
            alive if callable(alive) else (lambda u, s, pairs=set(alive): (u, s) in pairs)
        )
        with self._session() as db, db.begin():
            seen: dict[tuple[str, str], list[int]] = {}
            for row in self._rows(db):
                seen.setdefault((row.username, row.server_name), []).append(row.id)
        dead = [
            (pair, ids) for pair, ids in sorted(seen.items()) if not check(*pair)
        ]  # may be slow: unlocked
        freed = []
        for (username, server_name), ids in dead:
            with self._session() as db, db.begin():
                self._lock(
                    db
                )  # only the rows we saw: a server restarted meanwhile keeps its new ones
                rows = list(db.scalars(select(Allocation).where(Allocation.id.in_(ids))))
                db.execute(delete(Allocation).where(Allocation.id.in_(ids)))
            if rows:
                freed.append((username, server_name, self._devices_of(rows)))
        return freed
