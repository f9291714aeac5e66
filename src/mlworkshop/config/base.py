"""What every section of mlworkshop.yaml shares: the base model (unknown keys are errors,
assignments are validated) and the checks more than one section makes (memory sizes, database
URLs), so a key means the same wherever it stands.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from ..sizes import SIZE_HINT, normalize_size

# SQLAlchemy URLs of the databases we support for the hub's and the usage database alike
# (db.make_engine opens both; the tests run both on SQLite and PostgreSQL).
DB_URL_SCHEMES = ("sqlite://", "postgresql://", "postgresql+psycopg://", "postgresql+psycopg2://")


class Section(BaseModel):
    """Base for every section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def check_size(value: str | None) -> str | None:
    """A memory size (sizes.py: JupyterHub's ByteSpecification), in its canonical form; empty: None."""
    if value in (None, ""):
        return None
    try:
        return normalize_size(value)
    except ValueError:
        raise ValueError(f"must be {SIZE_HINT}") from None


def check_db_url(value: str | None) -> str | None:
    """A database URL we can open (and back up, and migrate); empty: None (SQLite in the site)."""
    if value in (None, ""):
        return None
    if not value.startswith(DB_URL_SCHEMES):
        raise ValueError(
            "must be a sqlite:// or postgresql:// URL (e.g. postgresql://user:password@host/db)"
        )
    return value


def check_non_root_user(value: str) -> str:
    """`auto`, or a numeric uid[:gid] that is not root: the container and pod backends' user."""
    if value == "auto":
        return value
    if not re.match(r"^\d+(:\d+)?$", value):
        raise ValueError("must be auto or a numeric uid[:gid] such as 1000:100")
    if value.split(":")[0] == "0":
        raise ValueError("user servers must not run as root (uid 0)")
    return value
