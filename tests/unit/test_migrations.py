"""Every mlw_* table has Alembic migrations: a site made by mlworkshop 0.1.0 (which made the hub's
mlw_* tables with create_all) is upgraded in place, keeping every account, lockout, allocation
and usage record; the models and the migrations agree (`alembic check`); a database from a newer
release is refused with a message. SQLite and PostgreSQL.

The 0.1.0 databases: tests/fixtures/release-0.1.0/hub.sqlite and usage.sqlite, made by 0.1.0
itself (make_databases.py there). On PostgreSQL the same rows go into the tables 0.1.0 made
(its declarations, frozen in schema.py there; its usage revision 0001, unchanged since).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import MetaData, create_engine, inspect, text

from mlworkshop.accelerators.allocator import Allocator, Limit
from mlworkshop.accelerators.inventory import Device
from mlworkshop.accounts.store import AccountStore, DatabaseUnavailable, LockoutPolicy, LoginOutcome
from mlworkshop.db import HUB_SCHEMA, USAGE_SCHEMA, alembic_config
from mlworkshop.usage.store import UsageStore, normalize_url

RELEASE = Path(__file__).parents[1] / "fixtures" / "release-0.1.0"
JUPYTERHUB_REVISION = "f460b0348206"  # JupyterHub 6.1's, in the fixture: ours must not touch it
T0 = dt.datetime(2026, 11, 30, 9, 0)
PASSWORDS = {"teacher": "Teach-the-class-1", "alice": "alice-Secret-42", "bob": "bob-Secret-42x"}
GPUS = [Device("nvidia", 0), Device("nvidia", 1)]
HUB_TABLES = {
    "mlw_accounts",
    "mlw_login_failures",
    "mlw_device_allocations",
    "mlw_device_allocation_lock",
    "mlw_password_links",
    "mlw_idp_links",
}


def _release_schema():
    spec = importlib.util.spec_from_file_location("release_0_1_0_schema", RELEASE / "schema.py")
    module = sys.modules.get(spec.name)
    if module is None:
        module = sys.modules[spec.name] = importlib.util.module_from_spec(
            spec
        )  # its annotations resolve there
        spec.loader.exec_module(module)
    return module


def _fixture_rows(name: str) -> dict[str, list[dict]]:
    """Every row of every mlw_* table of a fixture database, as SQLAlchemy reads them."""
    engine = create_engine(f"sqlite:///{RELEASE / name}")
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        rows = {
            t.name: [dict(r._mapping) for r in conn.execute(t.select())]
            for t in meta.sorted_tables
            if t.name.startswith("mlw_") and not t.name.endswith("alembic_version")
        }
    engine.dispose()
    return rows


def _copy_rows(url: str, rows: dict[str, list[dict]]) -> None:
    engine = create_engine(normalize_url(url))
    meta = MetaData()
    meta.reflect(engine)
    with engine.begin() as conn:
        for table in meta.sorted_tables:
            if rows.get(table.name):
                conn.execute(table.insert(), rows[table.name])
                if (
                    "id" in table.c
                ):  # what a serial column hands out next comes after the copied ids
                    conn.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                            f"(SELECT max(id) FROM {table.name}))"
                        )
                    )
    engine.dispose()


def release_databases(db_url: str, tmp_path: Path) -> tuple[str, str]:
    """(hub URL, usage URL) of databases as mlworkshop 0.1.0 left them."""
    if db_url.startswith("sqlite"):
        for name in ("hub.sqlite", "usage.sqlite"):
            shutil.copy(RELEASE / name, tmp_path / name)
        return f"sqlite:///{tmp_path / 'hub.sqlite'}", f"sqlite:///{tmp_path / 'usage.sqlite'}"
    from jupyterhub import orm

    orm.new_session_factory(db_url)  # JupyterHub's tables and alembic_version, as a hub makes them
    schema = _release_schema()
    engine = create_engine(db_url)
    schema.AccountsBase.metadata.create_all(engine)
    schema.AllocatorBase.metadata.create_all(engine)
    engine.dispose()
    _copy_rows(db_url, _fixture_rows("hub.sqlite"))
    engine = create_engine(normalize_url(db_url))
    with engine.begin() as conn:  # the usage tables as 0.1.0 made them: its revision, 0001
        command.upgrade(alembic_config(USAGE_SCHEMA, conn), "0001")
    engine.dispose()
    _copy_rows(db_url, _fixture_rows("usage.sqlite"))
    return db_url, db_url


def head(schema) -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(schema)).get_current_head()


def version(url: str, table: str) -> str | None:
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            return conn.execute(text(f"SELECT version_num FROM {table}")).scalar()
    finally:
        engine.dispose()


def assert_rows(url: str, rows: dict[str, list[dict]]) -> None:
    engine = create_engine(normalize_url(url))
    meta = MetaData()
    meta.reflect(engine)
    key = lambda row: sorted((k, str(v)) for k, v in row.items())  # noqa: E731
    with engine.connect() as conn:
        for table, expected in rows.items():
            if table == "mlw_device_allocation_lock":
                continue  # no data: the allocator's lock row, made on PostgreSQL only
            columns = (
                set(expected[0]) if expected else set()
            )  # a column added since keeps its default
            now = [
                {k: v for k, v in r._mapping.items() if k in columns}
                for r in conn.execute(meta.tables[table].select())
            ]
            assert sorted(map(key, now)) == sorted(map(key, expected)), table
    engine.dispose()


def assert_no_drift(url: str, schemas=(HUB_SCHEMA, USAGE_SCHEMA)) -> None:
    """`alembic check`: autogenerate finds nothing to change in any mlw_* table of these histories."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            for schema in schemas:
                command.check(alembic_config(schema, conn))  # raises AutogenerateDiffsDetected
    finally:
        engine.dispose()


def test_a_0_1_0_site_is_upgraded_keeping_everything(db_url, tmp_path):
    hub_url, usage_url = release_databases(db_url, tmp_path)
    hub_rows, usage_rows = _fixture_rows("hub.sqlite"), _fixture_rows("usage.sqlite")

    accounts = AccountStore(hub_url, hash_cost=10)  # the first start of the new release migrates
    allocator = Allocator(hub_url, GPUS)
    usage = UsageStore(usage_url)

    assert version(hub_url, HUB_SCHEMA.version_table) == head(HUB_SCHEMA)
    assert version(hub_url, "alembic_version") == JUPYTERHUB_REVISION
    engine = create_engine(normalize_url(hub_url))
    assert HUB_TABLES | {"users", "spawners", "api_tokens"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()
    assert_rows(hub_url, hub_rows)  # every row as it was
    assert_rows(usage_url, usage_rows)
    assert version(usage_url, USAGE_SCHEMA.version_table) == head(USAGE_SCHEMA)

    # ... and they still work: passwords, approval, admin, the lockout, the allocation, the sessions
    assert [(a.username, a.approved, a.is_admin) for a in accounts.list()] == [
        ("alice", True, False),
        ("bob", False, False),
        ("teacher", True, True),
    ]
    policy = LockoutPolicy(attempts=5, minutes=10)
    soon = T0 + dt.timedelta(minutes=5)
    assert (
        accounts.check_login("alice", PASSWORDS["alice"], "203.0.113.7", policy, now=soon).outcome
        is LoginOutcome.LOCKED
    )
    assert (
        accounts.check_login("alice", PASSWORDS["alice"], "192.0.2.1", policy, now=soon).outcome
        is LoginOutcome.OK
    )
    assert accounts.check_login(
        "teacher", PASSWORDS["teacher"], "192.0.2.1", policy, now=soon
    ).account.is_admin
    assert (
        accounts.check_login("bob", PASSWORDS["bob"], "192.0.2.1", policy, now=soon).outcome
        is LoginOutcome.NOT_APPROVED
    )
    assert allocator.held_by("alice") == [Device("nvidia", 0)]
    assert allocator.allocate("bob", "", "nvidia", 1, Limit(2, "test")) == [Device("nvidia", 1)]
    [running] = usage.open_sessions()
    assert (running.username, running.cpu_total) == ("bob", 12.5)
    [done] = usage.sessions("alice")
    assert (done.cpu_total, done.end_reason, len(usage.samples(done.id))) == (75.0, "stopped", 2)
    assert usage.overrides()[("user", "alice")].gpu_hours_per_week == 20.0
    accounts.engine.dispose(), allocator.close(), usage.close()

    assert_no_drift(hub_url, [HUB_SCHEMA])
    assert_no_drift(usage_url, [USAGE_SCHEMA])


def test_a_site_without_accelerators_gets_the_allocation_tables_added(db_url, tmp_path):
    """0.1.0 made the allocation tables only where accelerators were configured: the accounts
    tables are adopted, the missing ones made."""
    schema = _release_schema()
    engine = create_engine(db_url)
    schema.AccountsBase.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            schema.Account.__table__.insert(),
            [
                {
                    "username": "carol",
                    "password_hash": "x",
                    "approved": True,
                    "is_admin": False,
                    "created": T0,
                }
            ],
        )
    engine.dispose()
    allocator = Allocator(db_url, GPUS)  # the allocator opens the database first
    assert allocator.allocate("carol", "", "nvidia", 1) == [Device("nvidia", 0)]
    allocator.close()
    assert [a.username for a in AccountStore(db_url, hash_cost=10).list()] == ["carol"]
    assert version(db_url, HUB_SCHEMA.version_table) == head(HUB_SCHEMA)
    assert_no_drift(db_url, [HUB_SCHEMA])


def test_a_new_database_in_one_shared_with_jupyterhub_has_no_drift(db_url):
    """Fresh: both histories, and JupyterHub's tables, in one database (a PostgreSQL site may use
    one database for everything); each history looks at its own tables only."""
    from jupyterhub import orm

    orm.new_session_factory(db_url)
    AccountStore(db_url, hash_cost=10).engine.dispose()
    Allocator(db_url, GPUS).close()
    UsageStore(db_url).close()
    assert version(db_url, HUB_SCHEMA.version_table) == head(HUB_SCHEMA)
    assert version(db_url, USAGE_SCHEMA.version_table) == head(USAGE_SCHEMA)
    assert version(db_url, "alembic_version") == JUPYTERHUB_REVISION
    assert_no_drift(db_url)


def test_a_database_from_a_newer_release_is_refused_with_a_message(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    AccountStore(url, hash_cost=10).engine.dispose()
    with sqlite3.connect(tmp_path / "hub.sqlite") as conn:
        conn.execute(f"UPDATE {HUB_SCHEMA.version_table} SET version_num = '0042'")
    conn.close()
    with pytest.raises(DatabaseUnavailable, match="newer mlworkshop") as caught:
        AccountStore(f"sqlite:///{tmp_path}/./hub.sqlite", hash_cost=10)  # another URL: not cached
    assert "0042" in str(caught.value) and "backup" in str(caught.value)


OPEN_ALL = """
import sys, time
from pathlib import Path
from mlworkshop.accelerators.allocator import Allocator
from mlworkshop.accounts.store import AccountStore
from mlworkshop.usage.store import UsageStore
url, go = sys.argv[1], Path(sys.argv[2])
while not go.exists():  # all start together
    time.sleep(0.005)
AccountStore(url, hash_cost=10)
Allocator(url, [])
UsageStore(url)
"""


def test_processes_starting_at_once_migrate_once(db_url, tmp_path):
    """The hub, the usage service and a CLI command may open a new database at the same moment:
    one migrates while holding the write lock, the others wait and find nothing to do."""
    import subprocess

    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_ALL, db_url, str(go)], stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    go.touch()
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(errors)
    assert version(db_url, HUB_SCHEMA.version_table) == head(HUB_SCHEMA)
    assert version(db_url, USAGE_SCHEMA.version_table) == head(USAGE_SCHEMA)
    assert_no_drift(db_url)
