from __future__ import annotations

import grp
import os
import pwd
import secrets
import subprocess
import uuid

import psycopg2
import pytest

from .hubctl import Hub, make_site_dir, remove_site

PG_ADMIN_DSN = "dbname=postgres user=postgres host=127.0.0.1 port=5432"


def postgres_available() -> bool:
    try:
        psycopg2.connect(PG_ADMIN_DSN, connect_timeout=3).close()
        return True
    except psycopg2.OperationalError:
        return False


@pytest.fixture
def postgres_url():
    """A fresh database on the machine's PostgreSQL, dropped afterwards."""
    if not postgres_available():
        pytest.skip("PostgreSQL is not answering on 127.0.0.1:5432")
    name = "mlw_test_" + uuid.uuid4().hex[:10]
    conn = psycopg2.connect(PG_ADMIN_DSN)
    conn.autocommit = True
    conn.cursor().execute(f"CREATE DATABASE {name}")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    conn.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


def _remove_accounts(prefix: str, group: str) -> None:
    for entry in pwd.getpwall():
        if entry.pw_name.startswith(prefix):
            subprocess.run(["pkill", "-KILL", "-u", entry.pw_name], capture_output=True)
            subprocess.run(["userdel", entry.pw_name], capture_output=True)
    try:
        grp.getgrnam(group)
        subprocess.run(["groupdel", group], capture_output=True)
    except KeyError:
        pass


@pytest.fixture
def make_hub():
    """Factory for real hubs on free ports, each with its own site and system-account prefix."""
    hubs: list[Hub] = []

    def factory(**settings) -> Hub:
        tag = "t" + secrets.token_hex(2)
        hub = Hub(make_site_dir())
        hub.prefix = f"{tag}-"
        hub.admin_group = f"{tag}-adm"
        hub.configure(**{"spawner.local.user_prefix": hub.prefix,
                         "spawner.local.admin_group": hub.admin_group, **settings})
        hubs.append(hub)
        return hub

    yield factory
    for hub in hubs:
        hub.stop()
        print(f"--- hub log ({hub.site}) ---\n{hub.log()[-6000:]}")  # shown when a test fails
        if os.geteuid() == 0:
            _remove_accounts(hub.prefix, hub.admin_group)
        remove_site(hub.site)
