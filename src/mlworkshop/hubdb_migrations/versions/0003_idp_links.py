"""Who is who at an identity provider (issue 16): each (provider, subject) -> the account made at
that person's first sign-in, so the account stays theirs when their IdP name changes, and a second
person whose name gives the same account is refused instead of merged into it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mlw_idp_links",
        sa.Column("provider", sa.String(32), primary_key=True),
        sa.Column("subject", sa.String(255), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("idp_name", sa.String(255), nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mlw_idp_links")
