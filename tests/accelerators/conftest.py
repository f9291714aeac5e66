"""Real databases for the allocator: a SQLite file, and a fresh PostgreSQL database per test."""

from __future__ import annotations

import socket
import uuid

import pytest

PG_HOST, PG_PORT = "127.0.0.1", 5432


def _pg_answers() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def pg_url():
    if not _pg_answers():
        pytest.skip(f"PostgreSQL does not answer on {PG_HOST}:{PG_PORT}")
    import psycopg2

    name = f"mlw_acc_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres")
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
    """The hub database, on each engine the hub supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def allocators(db_url):
    """make(devices, slots) -> Allocator on this test's database; all closed afterwards."""
    from mlworkshop.accelerators.allocator import Allocator

    made = []

    def make(devices, slots=1):
        alloc = Allocator(db_url, devices, slots)
        made.append(alloc)
        return alloc

    yield make
    for alloc in made:
        alloc.close()
