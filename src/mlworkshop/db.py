"""Our databases: one engine factory, and one way to bring a schema up to date (Alembic).

Every table we own has Alembic migrations, in two histories, because they can live in two
databases (a site's defaults: <site>/state/jupyterhub.sqlite and <site>/usage/usage.sqlite; with
PostgreSQL they may be one):
- HUB_SCHEMA: the hub database (hub.db_url), next to JupyterHub's own tables: accounts and
  lockouts (accounts/store.py), device allocations (accelerators/allocator.py).
  Migrations in mlworkshop/hubdb_migrations/, version table mlw_alembic_version.
- USAGE_SCHEMA: the usage database (usage.db_url): sessions, samples, quota overrides, rates.
  Migrations in mlworkshop/usage/migrations/, version table mlw_usage_alembic_version.
JupyterHub owns `alembic_version` and its own tables; neither history touches them.

A store runs `migrate()` (`alembic upgrade head`) when it opens, once per process and database.
The hub tables' first revision adopts what releases before it made with `create_all`: tables
that exist are kept as they are (rows and all) and only missing ones are made.

SQLite durability is stated by each store where it calls `make_engine` (see SQLiteMode).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url

PACKAGE = Path(__file__).parent


# --- engines ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SQLiteMode:
    """How a store uses a SQLite file (ignored on other databases).

    synchronous: FULL -- a commit is on disk before it returns, so it survives a power cut;
        None -- the process's choice (the hub process sets WAL + NORMAL for every SQLite
        connection, hub/sqlite_tuning.py; SQLite's own default elsewhere is FULL).
    wal: switch the file to write-ahead logging (readers never wait for the writer).
    begin_immediate: every transaction takes the write lock when it begins (BEGIN IMMEDIATE),
        for read-then-write transactions that must not interleave; otherwise pysqlite begins a
        transaction at the first write.
    foreign_keys: enforce foreign keys (SQLite does not by default).
    threads: connections may move between threads (a store used from worker threads).
    """

    synchronous: str | None = "FULL"
    wal: bool = False
    begin_immediate: bool = False
    foreign_keys: bool = False
    threads: bool = False


BUSY_TIMEOUT = 30.0  # seconds a SQLite connection waits for another's lock (and the WAL switch)


def make_engine(
    url: str, sqlite: SQLiteMode, *, pool_size: int = 5, max_overflow: int = 5
) -> Engine:
    """The engine every store of ours opens its database with. On SQLite every connection waits
    up to 30 s for another process's write (the hub, the CLI and the usage service share files)."""
    if not url.startswith("sqlite"):
        return create_engine(
            url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow
        )
    in_memory = make_url(url).database in (None, "", ":memory:")
    args: dict = {"timeout": BUSY_TIMEOUT}
    if sqlite.threads:
        args["check_same_thread"] = False
    pool = (
        {} if in_memory else {"pool_size": max(pool_size, 5), "max_overflow": max(max_overflow, 10)}
    )
    engine = create_engine(url, connect_args=args, **pool)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        if sqlite.begin_immediate:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (pysqlite)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            if sqlite.wal:
                switch_to_wal(cursor)
            if sqlite.synchronous:
                cursor.execute(f"PRAGMA synchronous = {sqlite.synchronous}")
            if sqlite.foreign_keys:
                cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    if sqlite.begin_immediate:

        @event.listens_for(engine, "begin")
        def _begin(connection):
            connection.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock before reading

    return engine


def switch_to_wal(cursor, timeout: float = BUSY_TIMEOUT) -> None:
    """`PRAGMA journal_mode = WAL` on a connection, retried while another connection holds the
    lock it needs.

    Switching a file to WAL takes an exclusive lock. When two connections open a new file at the
    same moment (the hub, the usage service and a CLI command do: tests/unit/test_migrations.py),
    each may hold a shared lock while asking for it; SQLite then answers one of them "database is
    locked" at once, without its busy handler (waiting would deadlock), and that process failed to
    open its database. The other connection finishes the switch, so a retry after a short wait
    finds the file in WAL already. Any other error, or the lock still held after `timeout`, is
    raised as before."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


# --- schemas and migrations --------------------------------------------------------------------
@dataclass(frozen=True)
class Schema:
    """One Alembic history: where its scripts are, its version table, and which tables are its
    own (`alembic check` and autogenerate look at those and nothing else in a shared database)."""

    name: str
    script_location: Path
    version_table: str
    owns: Callable[[str], bool]
    lock_id: int  # PostgreSQL advisory lock: two processes starting at once, one migrates


HUB_SCHEMA = Schema(
    "hub",
    PACKAGE / "hubdb_migrations",
    "mlw_alembic_version",
    lambda t: (
        t.startswith("mlw_") and not t.startswith("mlw_usage_") and t != "mlw_alembic_version"
    ),
    724100512,
)
USAGE_SCHEMA = Schema(
    "usage",
    PACKAGE / "usage" / "migrations",
    "mlw_usage_alembic_version",
    lambda t: t.startswith("mlw_usage_") and t != "mlw_usage_alembic_version",
    724100511,
)


class SchemaError(Exception):
    """The database's schema cannot be brought up to date; str() says why and what to do."""


def alembic_config(schema: Schema, connection=None):
    """An Alembic Config for `schema`; its env.py uses `connection` when one is given
    (`alembic.command.upgrade/check(config, ...)`)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(schema.script_location))
    cfg.attributes["schema"] = schema
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def configure_context(context, connection, schema: Schema, target_metadata) -> None:
    """What each env.py runs: our version table, only our tables, batch mode on SQLite (which
    cannot alter most things in place), types compared."""

    def include_name(name, type_, _parents):
        return schema.owns(name) if type_ == "table" else True

    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=schema.version_table,
        include_name=include_name,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )


_migrated: set[tuple[str, str]] = set()
_migrate_lock = threading.Lock()


def migrate(engine: Engine, schema: Schema) -> None:
    """`alembic upgrade head` of `schema` on this database (once per process and database), in one
    transaction that holds the database's write lock: a second process waits, then finds nothing
    to do. Raises SchemaError when the database was upgraded by a newer mlworkshop."""
    key = (engine.url.render_as_string(hide_password=False), schema.name)
    with _migrate_lock:
        if key in _migrated:
            return
        from alembic import command
        from alembic.util import CommandError

        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            dbapi = connection.connection.dbapi_connection
            if sqlite:
                # SQLite's procedure for schema changes: foreign keys off (a table rebuilt by batch
                # mode must not cascade-delete the rows that refer to it), checked before commit.
                foreign_keys = dbapi.execute("PRAGMA foreign_keys").fetchone()[0]
                dbapi.execute("PRAGMA foreign_keys = OFF")
            try:
                with connection.begin():
                    if sqlite and not dbapi.in_transaction:
                        connection.exec_driver_sql("BEGIN IMMEDIATE")
                    if connection.dialect.name == "postgresql":
                        connection.exec_driver_sql(
                            f"SELECT pg_advisory_xact_lock({schema.lock_id})"
                        )
                    try:
                        command.upgrade(alembic_config(schema, connection), "head")
                    except CommandError as exc:
                        raise SchemaError(_newer_message(schema, engine, exc)) from None
                    if sqlite:
                        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise SchemaError(
                                f"Upgrading the {schema.name} database left rows whose references "
                                f"are gone ({broken[:3]}); nothing was changed."
                            )
            finally:
                if sqlite and foreign_keys:
                    dbapi.execute("PRAGMA foreign_keys = ON")
        _migrated.add(key)


def _newer_message(schema: Schema, engine: Engine, exc: Exception) -> str:
    where = engine.url.render_as_string(hide_password=True)
    return (
        f"The {schema.name} database {where} has a schema this mlworkshop does not know ({exc}). "
        "It was probably upgraded by a newer mlworkshop: install that version again, or restore "
        "the backup made before the upgrade."
    )
