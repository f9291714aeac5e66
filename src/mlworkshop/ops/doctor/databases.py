"""The hub's database and the usage database: reachable, and (SQLite) intact.

SQLite: `PRAGMA integrity_check` on the file, opened read-only (the check changes nothing and
waits for a writer rather than failing). PostgreSQL: a connection and `SELECT 1`, with a short
connect timeout. URLs are shown without their password. Nothing here is repaired automatically:
a damaged or unreachable database needs a person (restore a backup, start the server).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from .findings import Context, Finding, ok


def _shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL we cannot parse is shown as nothing rather than leaked
        return "(the configured URL)"


def _sqlite_problem(path: Path) -> str | None:
    """None if the file passes integrity_check, else what SQLite says."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        return f"cannot be opened ({exc})"
    try:
        rows = db.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.Error as exc:
        return f"cannot be read ({exc})"
    finally:
        db.close()
    result = [row[0] for row in rows]
    return None if result == ["ok"] else "; ".join(result[:5])


def _server_problem(url: str) -> str | None:
    from ...usage.store import normalize_url

    engine = create_engine(normalize_url(url), connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return str(exc.orig if getattr(exc, "orig", None) else exc).strip().splitlines()[0]
    finally:
        engine.dispose()
    return None


def check_database(id: str, what: str, url: str, key: str, may_be_missing: str) -> list[Finding]:
    """One database. `key`: the config key of its URL; `may_be_missing`: why a SQLite file that
    does not exist yet is fine."""
    if url.startswith("sqlite"):
        path = Path(make_url(url).database or "")
        if not path.exists():
            return [ok(id, f"{what}: {path} does not exist yet ({may_be_missing})")]
        problem = _sqlite_problem(path)
        if problem is None:
            return [ok(id, f"{what} ({path}) is intact (integrity_check ok)")]
        return [
            Finding(
                id,
                "error",
                f"{what} ({path}) is damaged: {problem}. Logins, servers or usage records may be lost.",
                "stop the hub and restore the newest backup: `mlworkshop restore FILE --site SITE --force`",
            )
        ]
    problem = _server_problem(url)
    if problem is None:
        return [ok(id, f"{what} ({_shown(url)}) answers")]
    return [
        Finding(
            id,
            "error",
            f"{what} ({_shown(url)}) does not answer: {problem}. Nobody can log in or start a server.",
            f"start the database server (e.g. `systemctl start postgresql`), or fix {key}: "
            f"`mlworkshop config set {key} URL`",
        )
    ]


def check_hub_database(ctx: Context) -> list[Finding]:
    if ctx.cfg is None:
        return []
    return check_database(
        "hub-database",
        "the hub's database",
        ctx.site.db_url(ctx.cfg),
        "hub.db_url",
        "the hub has not started on this site yet",
    )


def check_usage_database(ctx: Context) -> list[Finding]:
    if ctx.cfg is None or not ctx.cfg.usage.enabled:
        return []
    return check_database(
        "usage-database",
        "the usage database",
        ctx.site.usage_db_url(ctx.cfg),
        "usage.db_url",
        "the usage service has not recorded anything yet",
    )
