"""Class pre-warm on a real hub (issue 18): `mlworkshop class start GROUP [--at]` starts the group's
servers before the bell; each belongs to its student, a student who logs in gets it (not a second
one), the culler keeps pre-warmed servers until the bell plus the grace period however idle, then
stops the unused ones and leaves the used ones to the idle rule.

The culler runs every 10 s. With a 60 s idle timeout the idle rule alone would stop an unused
server about 70 s after it started. A server counts as used when its student was seen more than
60 s after it started (hub/classes.py UNUSED_SLACK: before that, the server's own first report
and the start look alike), so the first test lets alice come 65 s after the pre-warm.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import time

import psutil
import pytest

from mlworkshop.cli.hubapi import HubAPI
from mlworkshop.config import load_config
from mlworkshop.hub.classes import Schedule
from mlworkshop.site import Site

from .hubctl import mlw, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="servers run as the students' own accounts"),
]

ALICE_PW = "alice-Secret-42"
BOB_PW = "bob-Secret-42x"
CULLER = {"culler.timeout": 60, "culler.every": 10}


def _class_of_two(hub) -> HubAPI:
    for name, password in (("alice", ALICE_PW), ("bob", BOB_PW)):
        mlw(hub.site, "user", "add", name, "--password-stdin", input=password + "\n")
    site = Site(hub.site)
    api = HubAPI(site, load_config(site.root))
    api.add_to_group("cls", ["alice", "bob"])
    return api


def _server(api: HubAPI, name: str) -> dict | None:
    return ((api.user(name) or {}).get("servers") or {}).get("")


def _schedule(api: HubAPI, group: str) -> Schedule:
    model = api.client.get(f"{api.url}/groups/{group}")
    assert model.status_code == 200, model.text
    schedule = Schedule.from_group(model.json())
    assert schedule is not None, model.text
    return schedule


def _server_processes(account: str) -> list[psutil.Process]:
    uid = pwd.getpwnam(account).pw_uid
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.uids().real == uid:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_prewarmed_servers_belong_to_their_students_and_unused_ones_go_after_the_grace(make_hub):
    # idle timeout 300 s: here only the class's rule may stop a server
    hub = make_hub(**{"culler.timeout": 300, "culler.every": 10, "culler.class_grace": 75})
    hub.start()
    api = _class_of_two(hub)

    run = mlw(hub.site, "class", "start", "cls")
    assert run.returncode == 0, run
    assert "started 2 servers" in run.stdout, run.stdout
    # the bell the culler acts on: the command's own clock when it began, not now (it has started
    # two servers since; reading the clock here made the grace look up to a second short in CI)
    bell = _schedule(api, "cls").bell
    for name in ("alice", "bob"):
        wait_until(
            lambda n=name: (_server(api, n) or {}).get("ready"), 90, f"{name}'s server ready"
        )

    # each server runs as its own student's account (forked servers keep the fork server's
    # /proc/PID/environ, so the account is what tells them apart)
    for name in ("alice", "bob"):
        assert _server_processes(hub.prefix + name), name
    started = _server(api, "alice")["started"]
    pids = {p.pid for p in _server_processes(hub.prefix + "alice")}

    # a student cannot give herself the protection: the schedule is an admin's group property
    alice = hub.browser()
    assert alice.login("alice", ALICE_PW).status_code == 302
    token = alice.new_token("alice")
    refused = alice.client.put(
        "/hub/api/groups/cls/properties",
        json={"mlw_class": {"bell": "2099-01-01T00:00:00Z"}},
        headers={"Authorization": f"token {token}"},
    )
    assert refused.status_code in (403, 404), refused.text

    # alice comes to class (after the slack) and opens her server: the pre-warmed one, not a
    # second start
    wait = (bell + dt.timedelta(seconds=65) - dt.datetime.now(dt.UTC)).total_seconds()
    time.sleep(max(0.0, wait))
    assert _server(api, "alice") is not None and _server(api, "bob") is not None  # in the grace
    assert alice.client.get("/hub/home").status_code == 200
    lab = alice.client.get("/hub/spawn", follow_redirects=True)
    assert lab.status_code == 200 and "/user/alice/" in str(lab.url), lab.url
    assert _server(api, "alice")["started"] == started
    assert pids <= {p.pid for p in _server_processes(hub.prefix + "alice")}

    # bob never came: his server goes once the grace (75 s after the bell) is over; alice's stays
    wait_until(lambda: _server(api, "bob") is None, 90, "bob's unused server culled")
    culled_at = dt.datetime.now(dt.UTC)
    assert culled_at >= bell + dt.timedelta(seconds=75), "culled before the grace was over"
    assert _server(api, "alice") is not None, "a used pre-warmed server was culled with the unused"


def test_a_scheduled_class_starts_itself_and_is_kept_past_the_idle_timeout_until_the_bell(make_hub):
    hub = make_hub(**CULLER, **{"culler.class_prewarm": 600, "culler.class_grace": 0})
    hub.start()
    api = _class_of_two(hub)

    now = dt.datetime.now().astimezone()
    bell = now + dt.timedelta(seconds=150)
    if bell.date() != now.date():
        pytest.skip("the bell would be tomorrow: --at is a time of day")
    run = mlw(hub.site, "class", "start", "cls", "--at", f"{bell:%H:%M:%S}")
    assert run.returncode == 0, run
    assert "servers start at" in run.stdout, run.stdout
    # no server was started by the command: the culler service starts them (pre-warm is due)
    for name in ("alice", "bob"):
        wait_until(
            lambda n=name: (_server(api, n) or {}).get("ready"), 90, f"{name}'s server started"
        )
    started = max(
        dt.datetime.fromisoformat(_server(api, n)["started"].replace("Z", "+00:00"))
        for n in ("alice", "bob")
    )

    # idle longer than the timeout plus a culler round, and the bell not yet rung: both kept
    wait = (started + dt.timedelta(seconds=85) - dt.datetime.now(dt.UTC)).total_seconds()
    time.sleep(max(0.0, wait))
    assert dt.datetime.now(dt.UTC) < bell.astimezone(dt.UTC), "the machine was too slow to tell"
    assert _server(api, "alice") is not None and _server(api, "bob") is not None

    status = mlw(hub.site, "class", "status", "cls")
    assert status.returncode == 0 and "bell" in status.stdout and "ready" in status.stdout, status

    # class stop: servers stopped, schedule gone (the culler does not start them again)
    stop = mlw(hub.site, "class", "stop", "cls")
    assert stop.returncode == 0, stop
    wait_until(lambda: _server(api, "alice") is None and _server(api, "bob") is None, 60, "stopped")
    time.sleep(20)  # two culler ticks
    assert _server(api, "alice") is None and _server(api, "bob") is None
    assert "no schedule" in mlw(hub.site, "class", "status", "cls").stdout


def test_class_start_refuses_what_it_cannot_do(make_hub):
    hub = make_hub()
    stopped = mlw(hub.site, "class", "start", "cls", check=False)
    assert stopped.returncode == 2 and "not running" in stopped.stderr, stopped
    hub.start()
    missing = mlw(hub.site, "class", "start", "nobody-here", check=False)
    assert missing.returncode == 2 and "no group" in missing.stderr, missing
    _class_of_two(hub)
    bad = mlw(hub.site, "class", "start", "cls", "--at", "8 o'clock", check=False)
    assert bad.returncode == 2 and "HH:MM" in bad.stderr, bad
    assert "Traceback" not in bad.stderr + missing.stderr + stopped.stderr
