"""Upgrades that keep everything (issue 13, item 5): a site as mlworkshop 0.1.0 left it -- its
databases are the committed tests/fixtures/release-0.1.0 ones, where 0.1.0 kept them
(state/jupyterhub.sqlite, state/usage.sqlite), a student's files owned by her account -- started
with today's code (`mlworkshop up`, what `git pull && make up` runs). Every account logs in with
the fixture's password, a signup still waits for approval, the lockout, the allocation and the
usage records are all there, and the student's files are byte for byte what they were.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil

import pytest

from mlworkshop.accelerators.allocator import Allocator
from mlworkshop.accounts.store import AccountStore, LockoutPolicy, LoginOutcome
from mlworkshop.db import HUB_SCHEMA, USAGE_SCHEMA
from mlworkshop.hub.workspace import ensure_account
from mlworkshop.site import Site
from mlworkshop.usage.store import UsageStore
from tests.unit.test_migrations import (
    GPUS,
    PASSWORDS,
    RELEASE,
    T0,
    _fixture_rows,
    assert_rows,
    head,
    version,
)

from .hubctl import Server, mlw, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.geteuid() != 0, reason="a root hub: the student's files are her account's"
    ),
]

NOTES = "第一课的笔记 -- alice's notes, kept across the upgrade\n"


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _release_site(hub) -> dict:
    """The 0.1.0 databases where 0.1.0 kept them, and alice's files owned by her account."""
    site = Site(hub.site)
    shutil.copy(RELEASE / "hub.sqlite", site.state / "jupyterhub.sqlite")
    shutil.copy(RELEASE / "usage.sqlite", site.state / "usage.sqlite")
    assert not site.usage_dir.exists()  # 0.1.0 had no usage/ folder: `up` moves the database there
    account = ensure_account(hub.prefix + "alice", site.users / "alice", site.state)
    files = {
        site.users / "alice" / "work" / "notes.txt": NOTES,
        site.users / "alice" / "work" / "model.bin": os.urandom(1 << 20),
        site.submissions / "alice" / "homework-1.ipynb": '{"cells": []}\n',
    }
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    for path in [
        *files,
        site.users / "alice",
        site.users / "alice" / "work",
        site.submissions / "alice",
    ]:
        os.chown(path, account.uid, account.gid)
    os.chmod(site.users / "alice", 0o700)
    return {path: _sha256(path) for path in files}


def test_a_0_1_0_site_started_with_todays_code_keeps_everything(make_hub):
    hub = make_hub(
        **{
            "auth.password_hash_cost": 10,
            "auth.admin_users": '["teacher"]',
            "doctor.watch_every": 0,
        }
    )
    sums = _release_site(hub)
    hub_rows = _fixture_rows("hub.sqlite")
    hub.start()  # `mlworkshop up`: the new release's first start migrates
    site = Site(hub.site)
    hub_url = f"sqlite:///{site.state / 'jupyterhub.sqlite'}"
    usage_url = f"sqlite:///{site.usage_dir / 'usage.sqlite'}"
    assert version(hub_url, HUB_SCHEMA.version_table) == head(HUB_SCHEMA)
    assert_rows(hub_url, hub_rows)  # accounts, the lockout, the allocation: every row as it was
    assert (site.usage_dir / "usage.sqlite").exists() and not (site.state / "usage.sqlite").exists()
    # the usage service opens (and so migrates) its database at its first use: its first sampling
    # round, which begins once it answers, or the first request; not by the time the hub does
    # (this asserted at once and failed under a loaded fresh-clone `make test`: '0001' != '0002')
    wait_until(
        lambda: version(usage_url, USAGE_SCHEMA.version_table) == head(USAGE_SCHEMA),
        60,
        "the usage database migrated by the new usage service",
    )

    # every account logs in with the password it had; the signup still waits for approval
    teacher, alice = hub.browser(), hub.browser()
    assert teacher.login("teacher", PASSWORDS["teacher"]).status_code == 302
    assert teacher.api("GET", "/user").json()["admin"] is True
    assert alice.login("alice", PASSWORDS["alice"]).status_code == 302
    refused = hub.browser().login("bob", PASSWORDS["bob"], follow=True)
    assert "approv" in refused.text.lower()

    # the lockout (from 203.0.113.7, where someone guessed alice's password) and the allocation
    accounts = AccountStore(hub_url, hash_cost=10)
    policy = LockoutPolicy(attempts=5, minutes=10)
    soon = T0 + dt.timedelta(minutes=5)
    locked = accounts.check_login("alice", PASSWORDS["alice"], "203.0.113.7", policy, now=soon)
    assert locked.outcome is LoginOutcome.LOCKED
    accounts.engine.dispose()
    allocator = Allocator(hub_url, GPUS)
    assert [d.key for d in allocator.held_by("alice")] == [("nvidia", 0)]
    allocator.close()

    # usage: the finished session with its samples, the override, bob's session
    usage = UsageStore(usage_url)
    [done] = usage.sessions("alice")
    assert (done.cpu_total, done.end_reason, len(usage.samples(done.id))) == (75.0, "stopped", 2)
    [bobs] = usage.sessions("bob")
    assert bobs.cpu_total == 12.5 and bobs.started_at == T0 + dt.timedelta(hours=1)
    assert usage.overrides()[("user", "alice")].gpu_hours_per_week == 20.0
    usage.close()
    report = mlw(hub.site, "usage", "report", "--from", "2026-11-29", "--to", "2026-12-01")
    assert "alice" in report.stdout, report.stdout

    # alice's files: byte for byte, and hers to open in her server
    for path, digest in sums.items():
        assert _sha256(path) == digest, path
    alice.start_server("alice")
    server = Server(hub.url, "alice", alice.new_token("alice"))
    assert server.read_text("work/notes.txt").json()["content"] == NOTES
    assert server.read_text("submissions/homework-1.ipynb").status_code == 200
