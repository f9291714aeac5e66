"""Accounts from class rosters and JupyterHub's admin page (issue 16): display name, email, the
roster's group (and whether the hub still has to apply it), and one-time links to set a password.
Existing accounts keep every row; the new columns start empty.

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
    with op.batch_alter_table("mlw_accounts") as batch:
        batch.add_column(sa.Column("display_name", sa.String(255), nullable=True))
        batch.add_column(sa.Column("email", sa.String(255), nullable=True))
        batch.add_column(sa.Column("roster_group", sa.String(255), nullable=True))
        batch.add_column(sa.Column("group_left", sa.String(255), nullable=True))
        batch.add_column(
            sa.Column("groups_pending", sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.create_table(
        "mlw_password_links",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("expires", sa.DateTime, nullable=False),
    )
    op.create_index("ix_mlw_password_links_username", "mlw_password_links", ["username"])


def downgrade() -> None:
    op.drop_index("ix_mlw_password_links_username", "mlw_password_links")
    op.drop_table("mlw_password_links")
    with op.batch_alter_table("mlw_accounts") as batch:
        for column in ("groups_pending", "group_left", "roster_group", "email", "display_name"):
            batch.drop_column(column)
