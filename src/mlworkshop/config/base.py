"""What every section of mlworkshop.yaml shares: the base model (unknown keys are errors,
assignments are validated) and the checks more than one section makes (memory sizes, database
URLs), so a key means the same wherever it stands.
"""

from __future__ import annotations

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
