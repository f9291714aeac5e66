"""The usage database (SQLAlchemy 2). Tables are prefixed mlw_usage_ so the store can share the
hub's database; its Alembic version table is mlw_usage_alembic_version (JupyterHub owns
alembic_version).

Times are naive UTC datetimes.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

VERSION_TABLE = "mlw_usage_alembic_version"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class UsageSession(Base):
    """One server session: from the moment the server was up to the moment it was gone."""

    __tablename__ = "mlw_usage_sessions"
    __table_args__ = (
        Index("ix_mlw_usage_sessions_open", "username", "server_name", "ended_at"),
        Index("ix_mlw_usage_sessions_span", "started_at", "ended_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(255), index=True)
    server_name: Mapped[str] = mapped_column(String(255), default="")
    backend: Mapped[str] = mapped_column(String(32), default="local")
    profile: Mapped[str | None] = mapped_column(String(64), nullable=True)
    device_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)  # nvidia | ascend
    n_devices: Mapped[int] = mapped_column(Integer, default=0)  # devices held exclusively
    devices: Mapped[str] = mapped_column(Text, default="[]")  # JSON list, e.g. ["nvidia:0"]
    groups: Mapped[str] = mapped_column(Text, default="[]")  # JSON list: the user's groups at start
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    container_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    last_seen: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)  # last sample
    cpu_total: Mapped[float] = mapped_column(Float, default=0.0)  # cumulative CPU seconds seen
    # ... of which processes that have exited: a last sample by a sampler without their history
    # (the hub's, as it stops the server) adds them to what it reads of the processes still there
    cpu_departed: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    stop_requested: Mapped[str | None] = mapped_column(String(32), nullable=True)  # e.g. quota
    warned_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    over_limit_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class Sample(Base):
    """Resource use of one session over `interval_s` seconds ending at `ts`."""

    __tablename__ = "mlw_usage_samples"
    __table_args__ = (
        Index("ix_mlw_usage_samples_session_ts", "session_id", "ts"),
        Index("ix_mlw_usage_samples_ts", "ts"),
    )
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    session_id: Mapped[int] = mapped_column(ForeignKey("mlw_usage_sessions.id", ondelete="CASCADE"))
    ts: Mapped[dt.datetime] = mapped_column(DateTime)
    interval_s: Mapped[float] = mapped_column(Float)
    cpu_seconds: Mapped[float] = mapped_column(Float)  # CPU time used in the interval
    mem_bytes: Mapped[int] = mapped_column(BigInteger)  # resident memory of the process tree at ts
    gpu_util: Mapped[float | None] = mapped_column(
        Float, nullable=True
    )  # percent, where measurable
    gpu_mem_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class QuotaOverride(Base):
    """An admin's override of the configured budget of one user or group (None: keep config)."""

    __tablename__ = "mlw_usage_quota_overrides"
    __table_args__ = (UniqueConstraint("scope", "name", name="uq_mlw_usage_quota_scope_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(8))  # user | group
    name: Mapped[str] = mapped_column(String(255))
    gpu_hours_per_week: Mapped[float | None] = mapped_column(Float, nullable=True)
    cpu_hours_per_week: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_servers: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_devices: Mapped[int | None] = mapped_column(Integer, nullable=True)
    unlimited: Mapped[int] = mapped_column(Integer, default=0)  # 1: no limits at all
    set_by: Mapped[str] = mapped_column(String(255), default="")
    set_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Rate(Base):
    """Rates in effect from `valid_from` on (a new row whenever the configured rates change)."""

    __tablename__ = "mlw_usage_rates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    valid_from: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    cpu_hour: Mapped[float] = mapped_column(Float, default=0.0)
    mem_gib_hour: Mapped[float] = mapped_column(Float, default=0.0)
    gpu_hour: Mapped[float] = mapped_column(Float, default=0.0)
    npu_hour: Mapped[float] = mapped_column(Float, default=0.0)
    currency: Mapped[str] = mapped_column(String(8), default="EUR")
