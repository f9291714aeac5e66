"""SQLite as the hub's database under a class rush: write-ahead logging, and no fsync on the
event loop for JupyterHub's own state.

JupyterHub commits on its event loop many times per login and server start. In SQLite's default
rollback-journal mode each commit costs several fsync() calls (0.9 ms each on an idle disk here;
while 60 servers start and write their files, single fsyncs took 100 ms and more, and every page
of the hub waited behind them: /hub/health p99 310-400 ms in bench/rush.py at 30 students, 193 ms
without them). So every SQLite connection of the hub process uses WAL, and JupyterHub's own
connections `synchronous=NORMAL`: a commit is durable once the log is synced at the next
checkpoint. An application crash loses nothing; a power cut or kernel crash may lose JupyterHub's
last moments of state (tokens, which servers run: all re-created by logging in and starting
again) but never corrupts the database.

What must survive even a power cut sets `synchronous=FULL` on its own connections, which run
after this hook: accounts and lockouts (mlworkshop.accounts.store) and usage records
(mlworkshop.usage.store). WAL needs a local disk: the site must not be on NFS.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import event
from sqlalchemy.engine import Engine

from mlworkshop.db import switch_to_wal

_installed = False


def _on_connect(dbapi_connection, _record) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        try:
            switch_to_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()


def use_wal_for_sqlite() -> None:
    """Every SQLite database this process opens through SQLAlchemy uses WAL (idempotent)."""
    global _installed
    if not _installed:
        event.listen(Engine, "connect", _on_connect)
        _installed = True
