"""Fixtures every test folder shares."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit

import pytest

# `make test` (scripts/test.sh) starts a private PostgreSQL server and names it here; run by hand,
# pytest uses a server of the developer's own on 127.0.0.1:5432 when one answers.
PG_BASE = os.environ.get("MLW_TEST_POSTGRES", "")
_pg = urlsplit(PG_BASE or "postgresql://postgres@127.0.0.1:5432")
PG_HOST, PG_PORT = _pg.hostname, _pg.port or 5432
PG_DSN = f"dbname=postgres user=postgres host={PG_HOST} port={PG_PORT}"


def postgres_available() -> bool:
    import psycopg2

    try:
        psycopg2.connect(PG_DSN, connect_timeout=3).close()
        return True
    except psycopg2.OperationalError:
        return False


@pytest.fixture
def postgres_url():
    """A fresh database on the tests' PostgreSQL (trust auth), dropped afterwards."""
    if not postgres_available():
        if PG_BASE:  # make test started one: its absence is a failure, not a skip
            pytest.fail(f"the tests' PostgreSQL ({PG_BASE}) is not answering")
        pytest.skip(f"PostgreSQL is not answering on {PG_HOST}:{PG_PORT} (make test starts one)")
    import psycopg2

    name = "mlw_test_" + uuid.uuid4().hex[:10]
    admin = psycopg2.connect(PG_DSN)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A database on each engine mlworkshop supports: a SQLite file, then a fresh PostgreSQL one."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session", autouse=True)
def no_kept_proxy_left():
    """A hub's proxy outlives the hub (hub/kept_proxy.py); tests stop it with their site
    (hubctl.remove_site). Any a test left anyway is stopped when the run ends, so that no
    configurable-http-proxy outlives `make test`."""
    import psutil

    def proxies() -> dict[int, psutil.Process]:
        found = {}
        for process in psutil.process_iter(["pid", "cmdline"]):
            if any("configurable-http-proxy" in part for part in process.info["cmdline"] or ()):
                found[process.pid] = process
        return found

    before = set(proxies())
    yield
    for pid, process in proxies().items():
        if pid not in before:
            try:
                process.kill()
            except psutil.Error:
                pass


@pytest.fixture
def cheap_password_hashes(monkeypatch):
    """Accounts made in this process hash at cost 4 (one Argon2id pass, ~10 ms) and count as
    needing no rehash at it; the default cost is checked in tests/unit/test_passwords.py, and
    `mlworkshop` subprocesses keep the real cost."""
    from mlworkshop.accounts import passwords, store

    dummy = passwords.hash_password("not a real password", cost=4)
    monkeypatch.setattr(
        store, "hash_password", lambda password, cost=4: passwords.hash_password(password, 4)
    )
    monkeypatch.setattr(
        store, "needs_rehash", lambda hashed, cost=4: passwords.needs_rehash(hashed, 4)
    )
    monkeypatch.setattr(store, "dummy_hash", lambda cost=4: dummy)
