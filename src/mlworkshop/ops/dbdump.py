"""Consistent copies of the site's databases while the hub writes to them, and their way back.

SQLite: the online backup API (sqlite3.Connection.backup) copies a snapshot while the hub and
the usage service keep writing (WAL: readers do not block writers); copying the file itself
could catch a half-written page or miss what is still in the -wal file.
PostgreSQL: pg_dump (one transaction, a consistent snapshot) in its custom format; pg_restore
puts it into an empty database in a single transaction, so a failed restore leaves nothing.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path


class DatabaseCopyError(RuntimeError):
    """str() says which database and what to check."""


def redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "(unparseable URL)"


def libpq_url(url: str) -> str:
    """postgresql+psycopg2://... -> postgresql://... (what pg_dump and pg_restore take)."""
    scheme, sep, rest = url.partition("://")
    return "postgresql://" + rest if scheme.startswith("postgresql") and sep else url


def sqlite_path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


def copy_sqlite(source: Path, target: Path) -> None:
    """A snapshot of a live SQLite database into `target` (a new file)."""
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=60)
    except sqlite3.Error as exc:
        raise DatabaseCopyError(f"Cannot open the database {source}: {exc}.") from None
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)  # all pages in one step: one consistent snapshot
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise DatabaseCopyError(f"Could not copy the database {source}: {exc}.") from None
    finally:
        src.close()


def check_sqlite(path: Path) -> None:
    """A restored SQLite file that SQLite itself finds sound."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            result = db.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise DatabaseCopyError(
            f"The restored database {path.name} cannot be read: {exc}."
        ) from None
    if result != "ok":
        raise DatabaseCopyError(f"The restored database {path.name} is damaged: {result}.")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise DatabaseCopyError(
            f"{name} is not installed: install Debian's postgresql-client "
            "(`apt-get install postgresql-client`) and run this again."
        )
    return path


def _run(cmd: list[str], what: str, url: str) -> None:
    env = dict(os.environ, PGCONNECT_TIMEOUT="15")
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
        raise DatabaseCopyError(
            f"{what} {redact(url)} failed: {detail.replace(libpq_url(url), redact(url))}"
        )


def pg_dump(url: str, target: Path) -> None:
    """The whole database (schema and data, without owners or grants) into `target`."""
    _run(
        [
            _tool("pg_dump"),
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            "--compress=0",
            f"--file={target}",
            f"--dbname={libpq_url(url)}",
        ],
        "pg_dump of",
        url,
    )


def pg_restore(dump: Path, url: str) -> None:
    """The dump into `url`'s database, all or nothing."""
    _run(
        [
            _tool("pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            f"--dbname={libpq_url(url)}",
            str(dump),
        ],
        "pg_restore into",
        url,
    )


def tables(url: str) -> list[str]:
    """The tables a database has already (a restore goes only into an empty one)."""
    from sqlalchemy import inspect

    from ..db import SQLiteMode, make_engine
    from ..usage.store import normalize_url

    engine = make_engine(
        normalize_url(url), SQLiteMode(), pool_size=1, max_overflow=0
    )  # FULL: a restore
    try:
        return inspect(engine).get_table_names()
    except Exception as exc:  # noqa: BLE001 - a message, not a traceback
        raise DatabaseCopyError(
            f"Cannot reach the database {redact(url)}: {str(exc).splitlines()[0]}. "
            "Create it (empty) and check the URL."
        ) from None
    finally:
        engine.dispose()


def forget_servers(url: str) -> None:
    """In a restored hub database: no server is running. Their records name processes, ports and
    cgroups of the machine the backup came from (on this one, the same pid may be anyone's), so
    every user starts from a stopped server; their files are all there."""
    from sqlalchemy import text

    from ..db import SQLiteMode, make_engine
    from ..usage.store import normalize_url

    engine = make_engine(
        normalize_url(url), SQLiteMode(), pool_size=1, max_overflow=0
    )  # FULL: a restore
    try:
        with engine.begin() as db:
            names = set(engine.dialect.get_table_names(db))
            if "spawners" not in names:
                return  # the hub never ran
            ids = [
                row[0]
                for row in db.execute(
                    text("SELECT server_id FROM spawners WHERE server_id IS NOT NULL")
                )
            ]
            db.execute(
                text("UPDATE spawners SET server_id = NULL, state = :empty"), {"empty": "{}"}
            )
            for server_id in ids:  # users' servers only: services keep theirs (the hub renews them)
                db.execute(text("DELETE FROM servers WHERE id = :id"), {"id": server_id})
    finally:
        engine.dispose()
