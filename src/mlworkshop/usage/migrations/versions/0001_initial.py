"""Initial usage tables: sessions, samples, quota overrides, rates.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mlw_usage_sessions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("server_name", sa.String(255), nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("profile", sa.String(64), nullable=True),
        sa.Column("device_kind", sa.String(16), nullable=True),
        sa.Column("n_devices", sa.Integer, nullable=False),
        sa.Column("devices", sa.Text, nullable=False),
        sa.Column("groups", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=True),
        sa.Column("container_id", sa.String(128), nullable=True),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("ended_at", sa.DateTime, nullable=True),
        sa.Column("end_reason", sa.String(32), nullable=True),
        sa.Column("last_seen", sa.DateTime, nullable=True),
        sa.Column("cpu_total", sa.Float, nullable=False),
        sa.Column("stop_requested", sa.String(32), nullable=True),
        sa.Column("warned_at", sa.DateTime, nullable=True),
        sa.Column("over_limit_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_mlw_usage_sessions_username", "mlw_usage_sessions", ["username"])
    op.create_index(
        "ix_mlw_usage_sessions_open", "mlw_usage_sessions", ["username", "server_name", "ended_at"]
    )
    op.create_index("ix_mlw_usage_sessions_span", "mlw_usage_sessions", ["started_at", "ended_at"])
    op.create_table(
        "mlw_usage_samples",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column(
            "session_id",
            sa.Integer,
            sa.ForeignKey("mlw_usage_sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("ts", sa.DateTime, nullable=False),
        sa.Column("interval_s", sa.Float, nullable=False),
        sa.Column("cpu_seconds", sa.Float, nullable=False),
        sa.Column("mem_bytes", sa.BigInteger, nullable=False),
        sa.Column("gpu_util", sa.Float, nullable=True),
        sa.Column("gpu_mem_bytes", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_mlw_usage_samples_session_ts", "mlw_usage_samples", ["session_id", "ts"])
    op.create_index("ix_mlw_usage_samples_ts", "mlw_usage_samples", ["ts"])
    op.create_table(
        "mlw_usage_quota_overrides",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("gpu_hours_per_week", sa.Float, nullable=True),
        sa.Column("cpu_hours_per_week", sa.Float, nullable=True),
        sa.Column("max_servers", sa.Integer, nullable=True),
        sa.Column("max_devices", sa.Integer, nullable=True),
        sa.Column("unlimited", sa.Integer, nullable=False),
        sa.Column("set_by", sa.String(255), nullable=False),
        sa.Column("set_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("scope", "name", name="uq_mlw_usage_quota_scope_name"),
    )
    op.create_table(
        "mlw_usage_rates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("valid_from", sa.DateTime, nullable=False),
        sa.Column("cpu_hour", sa.Float, nullable=False),
        sa.Column("mem_gib_hour", sa.Float, nullable=False),
        sa.Column("gpu_hour", sa.Float, nullable=False),
        sa.Column("npu_hour", sa.Float, nullable=False),
        sa.Column("currency", sa.String(8), nullable=False),
    )
    op.create_index("ix_mlw_usage_rates_valid_from", "mlw_usage_rates", ["valid_from"])


def downgrade() -> None:
    op.drop_table("mlw_usage_rates")
    op.drop_table("mlw_usage_quota_overrides")
    op.drop_table("mlw_usage_samples")
    op.drop_table("mlw_usage_sessions")
