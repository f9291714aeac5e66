"""The doctor against a real hub run as root: break things for real -- a lesson folder 0777, the
fork server killed, the usage service killed, a student's server killed under the hub, a
student's process left behind with no server -- and see each finding and each fix. Then the
watch service, run by the hub, repairing on its own and recording it in <site>/logs/doctor.log,
and our metrics in /hub/metrics.

Killed services are looked at in this process right after the kill (Context + the check), since
the hub itself looks at its services every 30 s and would restart the usage service first.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from mlworkshop.config import load_config
from mlworkshop.ops.doctor import hub_checks
from mlworkshop.ops.doctor.findings import Context
from mlworkshop.ops.doctor.hubclient import HubClient
from mlworkshop.site import Site
from tests.integration.hubctl import mlw

from .doctor_helpers import doctor, finding

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="a hub run as root: real student accounts"),
]

PASSWORD = "Alice-Pass-42x"


def _ctx(hub) -> Context:
    site = Site(hub.site)
    cfg = load_config(hub.site, {})
    client = HubClient.connect(site, cfg)
    assert client is not None, "the hub's API does not answer"
    return Context(site, cfg, client)


def _lesson(hub) -> Path:
    return sorted(p for p in (hub.site / "content" / "lessons").iterdir() if p.is_dir())[0]


def _wait(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


def _wait_hub_sees_exit(state, what: str) -> None:
    """Until the hub's own record says the killed process ended -- what the doctor reads. A
    process's /proc entry shows a zombie as soon as its main thread exits, but waitpid (the hub's
    poll) reports it only once every thread has: in that gap the hub still says "running" (seen
    in CI: the usage service "runs but does not answer", 6 ms after the kill)."""
    _wait(lambda: not state()["running"], f"the hub sees {what} ended", 30)


def _metrics(hub) -> str:
    token = (hub.site / "secrets" / "cli_api_token").read_text().strip()
    response = httpx.get(
        hub.url + "/hub/metrics", headers={"Authorization": f"token {token}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.text


def test_break_things_and_doctor_fix_repairs_them(make_hub):
    hub = make_hub(**{"doctor.watch_every": 0})
    hub.start()
    mlw(hub.site, "user", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    browser = hub.browser()
    assert browser.login("alice", PASSWORD).status_code == 302
    browser.start_server("alice")
    (hub.site / "backups").mkdir(mode=0o700)
    (hub.site / "backups" / "mlworkshop-host-20261201-000000.tar.gz").write_bytes(b"")

    code, report = doctor(hub.site)
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert code == 0 and not errors, errors
    for id in ("hub", "fork-server", "usage-service", "stale-server", "orphans", "hub-database"):
        assert finding(report, id)["severity"] in ("ok", "warn"), finding(report, id)

    # 1. a lesson folder 0777
    lesson = _lesson(hub)
    os.chmod(lesson, 0o777)
    code, report = doctor(hub.site)
    assert code == 1 and finding(report, "content-permissions")["severity"] == "error"
    code, report = doctor(hub.site, "--fix")
    assert code == 0, report
    assert finding(report, "content-permissions")["severity"] == "ok"
    assert stat.S_IMODE(lesson.stat().st_mode) == 0o2775

    # 2. the fork server killed
    ctx = _ctx(hub)
    old = ctx.hub.fork_server()["pid"]
    os.kill(old, signal.SIGKILL)
    _wait_hub_sees_exit(lambda: ctx.hub.fork_server(), "the fork server")
    code, report = doctor(hub.site)
    found = finding(report, "fork-server")
    assert code == 1 and found["severity"] == "error" and found["fixable"], found
    code, report = doctor(hub.site, "--fix")
    assert code == 0 and finding(report, "fork-server")["severity"] == "ok", report
    new = ctx.hub.fork_server()["pid"]
    assert new and new != old
    forked = hub.log().count("Forked a server for alice")
    browser.stop_server("alice")
    browser.start_server("alice")
    log = hub.wait_log("Forked a server for alice", count=forked + 1)
    assert log.count("Forked a server for alice") == forked + 1  # by the new fork server

    # 3. the usage service killed
    usage = ctx.hub.service("usage")["pid"]
    os.kill(usage, signal.SIGKILL)
    _wait_hub_sees_exit(lambda: ctx.hub.service("usage"), "the usage service")
    [found] = hub_checks.check_usage_service(ctx)
    assert found.severity == "error" and found.fixable, found
    done = found.repair()
    assert "started the usage service again" in done
    _wait(
        lambda: hub_checks.check_usage_service(ctx)[0].severity == "ok", "usage service back", 120
    )
    assert ctx.hub.service("usage")["pid"] != usage

    # 4. alice's server killed under the hub
    server_pid = ctx.hub.users()
    server_pid = next(u for u in server_pid if u["name"] == "alice")["servers"][""]["state"]["pid"]
    os.kill(server_pid, signal.SIGKILL)
    _wait(
        lambda: (
            not psutil.pid_exists(server_pid) or psutil.Process(server_pid).status() == "zombie"
        ),
        "server gone",
    )
    ctx.cache.clear()
    [found] = hub_checks.check_stale_servers(ctx)
    assert found.severity == "error" and "alice's server" in found.message, found
    found.repair()
    _wait(
        lambda: not next(u for u in ctx.hub.users() if u["name"] == "alice").get("servers"),
        "alice's server stopped",
    )

    # 5. a process of alice's account that no server owns
    account = hub.prefix + "alice"
    leftover = subprocess.Popen(
        ["runuser", "-u", account, "--", "sleep", "600"], start_new_session=True
    )
    try:
        sleeper = _wait(
            lambda: [p for p in psutil.Process(leftover.pid).children() if p.username() == account],
            "alice's sleep running",
        )[0]
        _wait(lambda: time.time() - sleeper.create_time() > 1, "the process older than the look")
        code, report = doctor(hub.site)
        found = finding(report, "orphans")
        assert found["severity"] == "warn" and account in found["message"], found
        code, report = doctor(hub.site, "--fix")
        assert finding(report, "orphans")["severity"] == "ok", report
        assert any("orphan" in r.get("done", "") for r in report["repairs"]), report["repairs"]
        assert not sleeper.is_running() or sleeper.status() == psutil.STATUS_ZOMBIE
    finally:
        leftover.kill()
        leftover.wait()

    # our metrics, beside JupyterHub's
    text = _metrics(hub)
    for name in (
        "mlworkshop_start_queue_length",
        "mlworkshop_starts_in_flight",
        "mlworkshop_quota_sessions",
        "mlworkshop_last_backup_age_seconds",
        "jupyterhub_",  # JupyterHub's own are still there
    ):
        assert name in text, name
    ctx.hub.close()


def test_the_watch_service_repairs_on_its_own_and_records_it(make_hub):
    hub = make_hub(**{"doctor.watch_every": 5})
    hub.start()
    log = hub.site / "logs" / "doctor.log"
    _wait(lambda: log.exists() and " run: " in log.read_text(), "the watch service's first run", 90)
    assert stat.S_IMODE(log.stat().st_mode) == 0o640

    lesson = _lesson(hub)
    os.chmod(lesson, 0o777)
    ctx = _ctx(hub)
    old = ctx.hub.fork_server()["pid"]
    os.kill(old, signal.SIGKILL)
    _wait(
        lambda: (
            "fixed content-permissions" in log.read_text()
            and "fixed fork-server" in log.read_text()
        ),
        "the watch service's repairs in doctor.log",
        90,
    )
    assert stat.S_IMODE(lesson.stat().st_mode) == 0o2775
    assert ctx.hub.fork_server()["running"]
    ctx.hub.close()

    text = _metrics(hub)
    assert 'mlworkshop_doctor_findings{severity="error"}' in text
    assert 'mlworkshop_doctor_check{check="fork-server"}' in text
    assert "mlworkshop_doctor_last_run_timestamp_seconds" in text
