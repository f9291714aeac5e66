"""The hub's mlw_* tables as mlworkshop 0.1.0 made them with create_all: accounts, login failures
(lockouts), device allocations and their lock row. Adopting: a table that exists already (a site
from 0.1.0; the allocation tables only where accelerators were configured) is kept as it is, with
its rows; only missing tables are made.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "mlw_accounts" not in existing:
        op.create_table(
            "mlw_accounts",
            sa.Column("username", sa.String(64), primary_key=True),
            sa.Column("password_hash", sa.String(128), nullable=False),
            sa.Column("approved", sa.Boolean, nullable=False),
            sa.Column("is_admin", sa.Boolean, nullable=False),
            sa.Column("created", sa.DateTime, nullable=False),
            sa.Column("approved_at", sa.DateTime, nullable=True),
        )
    if "mlw_login_failures" not in existing:
        op.create_table(
            "mlw_login_failures",
            sa.Column("username", sa.String(64), primary_key=True),
            sa.Column("client", sa.String(64), primary_key=True),
            sa.Column("failures", sa.Integer, nullable=False),
            sa.Column("last_failure", sa.DateTime, nullable=False),
            sa.Column("locked_until", sa.DateTime, nullable=True),
        )
    if "mlw_device_allocations" not in existing:
        op.create_table(
            "mlw_device_allocations",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("device_index", sa.Integer, nullable=False),
            sa.Column("slot", sa.Integer, nullable=False),
            sa.Column("username", sa.String(255), nullable=False),
            sa.Column("server_name", sa.String(255), nullable=False),
            sa.Column("taken_at", sa.DateTime, nullable=False),
            sa.UniqueConstraint("kind", "device_index", "slot", name="uq_mlw_device_slot"),
        )
        op.create_index(
            "ix_mlw_device_allocations_username", "mlw_device_allocations", ["username"]
        )
    if "mlw_device_allocation_lock" not in existing:
        op.create_table("mlw_device_allocation_lock", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("mlw_device_allocation_lock")
    op.drop_table("mlw_device_allocations")
    op.drop_table("mlw_login_failures")
    op.drop_table("mlw_accounts")
