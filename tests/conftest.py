"""Fixtures every test folder shares."""

from __future__ import annotations

import uuid

import pytest

PG_DSN = "dbname=postgres user=postgres host=127.0.0.1 port=5432"


def postgres_available() -> bool:
    import psycopg2

    try:
        psycopg2.connect(PG_DSN, connect_timeout=3).close()
        return True
    except psycopg2.OperationalError:
        return False


@pytest.fixture
def postgres_url():
    """A fresh database on the machine's PostgreSQL (127.0.0.1:5432, trust auth), dropped afterwards."""
    if not postgres_available():
        pytest.skip("PostgreSQL is not answering on 127.0.0.1:5432")
    import psycopg2

    name = "mlw_test_" + uuid.uuid4().hex[:10]
    admin = psycopg2.connect(PG_DSN)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
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
