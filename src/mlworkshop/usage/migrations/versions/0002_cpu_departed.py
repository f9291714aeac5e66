"""Sessions remember how much of their CPU was used by processes that have exited
(mlw_usage_sessions.cpu_departed), so the hub's last sample at a stop adds up.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mlw_usage_sessions") as batch:
        batch.add_column(sa.Column("cpu_departed", sa.Float, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("mlw_usage_sessions") as batch:
        batch.drop_column("cpu_departed")
