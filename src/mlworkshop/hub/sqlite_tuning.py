"""SQLite as the hub's database under a class rush: write-ahead logging.

JupyterHub commits on its event loop many times per login and server start. In SQLite's default
rollback-journal mode each commit costs several fsync() calls (0.9 ms each on an idle disk here,
far more while 60 servers start), and every page of the hub waits behind them. In WAL mode a
commit is one fsync of the log (0.25 ms measured, `synchronous=FULL`: just as durable), and
readers (the accounts and device stores on worker threads) no longer block the writer.
WAL needs a local disk: the site must not be on NFS (the README says so).
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import event
from sqlalchemy.engine import Engine

_installed = False


def _on_connect(dbapi_connection, _record) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
        finally:
            cursor.close()


def use_wal_for_sqlite() -> None:
    """Every SQLite database this process opens through SQLAlchemy uses WAL (idempotent)."""
    global _installed
    if not _installed:
        event.listen(Engine, "connect", _on_connect)
        _installed = True
