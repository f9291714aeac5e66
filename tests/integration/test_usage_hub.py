"""Usage accounting on a real hub: sessions written by the spawner hooks on real starts and stops,
samples of the real server processes, a session left open by killing the hub closed as `lost`
on restart, who may see what through the usage service (browser cookie and API tokens), quota
refusal at spawn and stop-at-limit while running. SQLite and the machine's PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import re
import signal
import time

import httpx
import pytest

from .hubctl import free_port, mlw, wait_until

pytestmark = pytest.mark.integration

ADMIN_PW = "Teach-the-class-1"
ALICE_PW = "alice-Secret-42"
BOB_PW = "bob-Secret-42x"
TWO_GPUS = "[{kind: nvidia, index: 0, name: Fake GPU, memory_mib: 1024}, {kind: nvidia, index: 1, name: Fake GPU, memory_mib: 1024}]"
USAGE = "/services/usage"


def wait_for(check, timeout: float = 60, every: float = 0.25, what: str = "condition"):
    """hubctl.wait_until with this module's argument order (five test files import it)."""
    return wait_until(check, timeout, what, every)


class UsageAPI:
    def __init__(self, hub, token: str):
        self.client = httpx.Client(
            base_url=hub.url + USAGE, headers={"Authorization": f"token {token}"}, timeout=30
        )

    def get(self, path: str, **kw) -> httpx.Response:
        return self.client.get(path, **kw)

    def json(self, path: str, **kw):
        response = self.get(path, **kw)
        assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
        return response.json()


def usage_hub(make_hub, **extra):
    hub = make_hub(
        **{
            "usage.sample_every": 0.5,
            "usage.service_port": free_port(),
            "auth.admin_users": "[teacher]",
            "culler.enabled": "false",
            **extra,
        }
    )
    mlw(hub.site, "user", "add", "teacher", "--admin", "--password-stdin", input=ADMIN_PW + "\n")
    mlw(hub.site, "user", "add", "alice", "--password-stdin", input=ALICE_PW + "\n")
    mlw(hub.site, "user", "add", "bob", "--password-stdin", input=BOB_PW + "\n")
    return hub


def start_hub(hub) -> None:
    hub.start()
    wait_for(lambda: _status(hub.url + USAGE + "/api/health") == 200, 60, what="usage service up")


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


def login(hub, name: str, password: str):
    browser = hub.browser()
    assert browser.login(name, password).status_code == 302
    return browser


def parse(ts: str) -> dt.datetime:
    return dt.datetime.fromisoformat(ts.removesuffix("Z"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def usage_db(request):
    if request.param == "sqlite":
        return {}
    return {"usage.db_url": request.getfixturevalue("postgres_url")}


def test_sessions_recorded_authorized_and_lost(
    usage_db, make_hub
):  # hub stops before its database is dropped
    hub = usage_hub(make_hub, **usage_db)
    extra = hub.site / "jupyterhub_config.d"
    extra.mkdir(exist_ok=True)
    (extra / "poll.py").write_text(
        "c.Spawner.poll_interval = 1\n"
    )  # the hub notices a dead server within 1 s
    start_hub(hub)
    teacher = login(hub, "teacher", ADMIN_PW)
    alice = login(hub, "alice", ALICE_PW)
    admin_api = UsageAPI(hub, teacher.new_token("teacher"))
    alice_token = alice.new_token("alice")
    alice_api = UsageAPI(hub, alice_token)

    # a real start is recorded by the spawner hook, with the server's pid
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    alice.start_server("alice")
    [open_] = admin_api.json("/api/sessions", params={"user": "alice", "state": "open"})
    assert open_["user"] == "alice" and open_["backend"] == "local" and open_["end"] is None
    assert (
        before - dt.timedelta(seconds=5)
        <= parse(open_["start"])
        <= dt.datetime.now(dt.UTC).replace(tzinfo=None)
    )
    # the sampler measures the real JupyterLab process tree
    samples = wait_for(
        lambda: admin_api.json(f"/api/sessions/{open_['id']}/samples"), 60, what="samples"
    )
    assert samples[-1]["mem_bytes"] > 30 * 2**20, samples[
        -1
    ]  # a JupyterLab holds tens of MiB at least
    live = admin_api.json("/api/servers")
    assert [s["user"] for s in live] == ["alice"]

    # stopping it closes the session at once, as `stopped`
    alice.stop_server("alice")
    closed = admin_api.json(f"/api/sessions/{open_['id']}")
    assert closed["end_reason"] == "stopped" and closed["end"] is not None
    assert parse(closed["end"]) >= parse(closed["start"])

    # --- who may see what -------------------------------------------------------------------
    # a student's token: her own data yes, anyone else's and admin endpoints no
    assert alice_api.get(f"/api/sessions/{open_['id']}").status_code == 200
    mine = alice_api.json("/api/sessions")
    assert {s["user"] for s in mine} == {"alice"}
    limits = alice_api.json("/api/users/alice/limits")
    assert {"cpu_limit_cores", "memory_limit_gib", "gpu_limit", "usage"} <= set(limits)
    assert set(limits["usage"]) == {"cpu_cores", "memory_gib", "gpu"}
    for path in (
        "/api/users/teacher/limits",
        "/api/users/bob/usage",
        "/api/report",
        "/api/sessions?user=teacher",
        "/api/report?format=csv",
    ):
        assert alice_api.get(path).status_code == 403, path
    assert alice_api.client.post("/api/servers/bob/stop").status_code == 403
    assert (
        alice_api.client.put("/api/users/alice/quota", json={"unlimited": True}).status_code == 403
    )
    assert alice_api.client.post("/api/sessions", json={"user": "alice"}).status_code == 403
    assert (
        alice_api.client.put(f"/api/sessions/{open_['id']}/end", json={"reason": "x"}).status_code
        == 403
    )
    # no token at all / a made-up token
    assert httpx.get(hub.url + USAGE + "/api/sessions").status_code == 401
    assert UsageAPI(hub, "not-a-token").get("/api/sessions").status_code == 403
    # the same with a browser cookie (OAuth through the hub)
    page = alice.client.get(USAGE + "/me")
    assert page.status_code == 200 and "My usage: alice" in page.text, page.text[:500]
    assert alice.client.get(USAGE + "/admin").status_code == 403
    for path in ("/api/users/teacher/limits", "/api/report", "/api/sessions?user=teacher"):
        assert alice.client.get(USAGE + path).status_code == 403, path
    xsrf = alice.client.cookies.get("mlw-usage-xsrf")
    assert xsrf
    assert (
        alice.client.post(
            USAGE + "/api/servers/teacher/stop", headers={"X-XSRF-Token": xsrf}
        ).status_code
        == 403
    )
    assert (
        alice.client.put(
            USAGE + "/api/users/alice/quota",
            json={"unlimited": True},
            headers={"X-XSRF-Token": xsrf},
        ).status_code
        == 403
    )
    # the admin sees everyone, by token and by cookie
    assert admin_api.get("/api/users/alice/limits").status_code == 200
    assert admin_api.get("/api/report", params={"by": "user"}).status_code == 200
    assert teacher.client.get(USAGE + "/admin").status_code == 200
    # a script token with our read scope (no admin:users): may read everyone, may not write
    reader = teacher.api(
        "POST",
        "/users/teacher/tokens",
        json={"note": "report script", "scopes": ["custom:mlworkshop-usage:read"]},
    )
    assert reader.status_code in (200, 201), reader.text
    reader_api = UsageAPI(hub, reader.json()["token"])
    assert reader_api.get("/api/report").status_code == 200
    assert (
        reader_api.client.put("/api/users/alice/quota", json={"unlimited": True}).status_code == 403
    )

    # --- a server that crashes while the hub runs: closed as `died` when the hub notices --------
    alice.start_server("alice")
    [crashing] = admin_api.json("/api/sessions", params={"user": "alice", "state": "open"})
    os.killpg(_server_pid(hub, crashing["id"]), signal.SIGKILL)
    wait_for(
        lambda: not alice.api("GET", "/users/alice").json()["servers"],
        60,
        what="the hub noticing the crash",
    )
    died = admin_api.json(f"/api/sessions/{crashing['id']}")
    assert died["end_reason"] == "died" and parse(died["end"]) >= parse(died["start"]), died

    # --- a session left open by a hub that was killed ----------------------------------------
    alice.start_server("alice")
    [running] = admin_api.json("/api/sessions", params={"user": "alice", "state": "open"})
    wait_for(
        lambda: len(admin_api.json(f"/api/sessions/{running['id']}/samples")) >= 2,
        60,
        what="two samples",
    )
    pid = next(s for s in admin_api.json("/api/servers") if s["session_id"] == running["id"])
    proxy_pid = int((hub.site / "state" / "proxy.pid").read_text())
    os.killpg(hub.proc.pid, signal.SIGKILL)  # the hub dies at once (a crash, an OOM kill) ...
    os.kill(proxy_pid, signal.SIGKILL)  # ... and its proxy (its own session: killpg misses it)
    hub.proc.wait()
    server_pid = _server_pid(hub, running["id"])
    os.killpg(server_pid, signal.SIGKILL)  # ... and the server dies while the hub is down
    killed_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    time.sleep(1)
    start_hub(hub)
    teacher = login(hub, "teacher", ADMIN_PW)
    admin_api = UsageAPI(hub, teacher.new_token("teacher"))
    lost = admin_api.json(f"/api/sessions/{running['id']}")
    assert lost["end_reason"] == "lost", lost
    last_sample = admin_api.json(f"/api/sessions/{running['id']}/samples")[-1]
    assert parse(lost["end"]) == parse(last_sample["ts"]) <= killed_at  # the best end time known
    assert admin_api.json("/api/sessions", params={"state": "open"}) == []
    assert pid["user"] == "alice"


def _server_pid(hub, session_id: int) -> int:
    """The pid the hook recorded, read from the store directly (the hub is down)."""
    from mlworkshop.config import load_config
    from mlworkshop.site import Site
    from mlworkshop.usage.store import UsageStore

    site = Site(hub.site)
    store = UsageStore(site.usage_db_url(load_config(site.root)))
    try:
        pid = store.get_session(session_id).pid
    finally:
        store.close()
    assert pid
    return pid


def test_quota_refuses_at_spawn_and_stops_at_the_limit(make_hub):
    # 2 fake GPUs handed out exclusively; 0.001 device-hours (3.6 s) of GPU a week; 1 s of grace
    hub = usage_hub(
        make_hub,
        **{
            "accelerators.mode": "exclusive",
            "accelerators.inventory": TWO_GPUS,
            "accelerators.max_per_user": 2,
            "usage.quotas.default": "{gpu_hours_per_week: 0.001, max_devices: 1}",
            "usage.grace_minutes": 0.02,
            "usage.warn_at": 0.5,
        },
    )
    start_hub(hub)
    teacher = login(hub, "teacher", ADMIN_PW)
    alice = login(hub, "alice", ALICE_PW)
    admin_api = UsageAPI(hub, teacher.new_token("teacher"))
    alice_api = UsageAPI(hub, alice.new_token("alice"))

    form = alice.client.get("/hub/spawn").text
    assert (
        "1 × GPU" in form and "2 × GPU" not in form
    )  # budget left for one device: 2 x GPU is not offered
    # a crafted request for two devices is refused with what is left
    refused = alice.api("POST", "/users/alice/server", json={"profile": "gpu-2"})
    assert refused.status_code == 403, refused.text
    assert (
        "may hold 1 at once" in refused.text and "devices: 1 of 1 more may be held" in refused.text
    ), refused.text
    assert not alice.api("GET", "/users/alice").json()["servers"]
    response = alice.api("POST", "/users/alice/server", json={"profile": "gpu-1"})
    assert response.status_code in (201, 202), response.text
    alice.wait_ready("alice")

    # running: warned, then stopped by the usage service once the budget and the grace are spent
    def stopped():
        model = alice.api("GET", "/users/alice").json()
        return not model["servers"]

    wait_for(stopped, 90, 0.5, "stop at the limit")
    [session] = admin_api.json("/api/sessions", params={"user": "alice"})
    assert session["end_reason"] == "quota", session
    limits = alice_api.json("/api/users/alice/limits")
    assert limits["state"] == "over" and limits["remaining"]["gpu_hours"] == 0
    assert limits["used_this_week"]["gpu_hours"] >= 0.001

    # at spawn: the GPU profiles are gone from the form, and a crafted request is refused with the budget
    form = alice.client.get("/hub/spawn").text
    assert "1 × GPU" not in form and "2 × GPU" not in form
    # ... but a form remains (one choice: CPU only), saying why, so nothing is started behind her back
    assert 'value="cpu" checked' in form and "hidden by your quota" in form, form[-3000:]
    assert not alice.api("GET", "/users/alice").json()["servers"]
    crafted = alice.api("POST", "/users/alice/server", json={"profile": "gpu-1"})
    assert crafted.status_code == 403, crafted.text
    assert "GPU/NPU budget of 0.001 device-hours this week is used up" in crafted.text
    assert "0 of 0.001 device-hours left" in crafted.text
    # the same from a spawn page opened earlier: said in words, not "HTTP 403: error (...)" (issue 20)
    action = html.unescape(re.search(r'id="spawn_form"[^>]*action="([^"]*)"', form, re.S).group(1))
    page = alice.client.post(action, data={"profile": "gpu-1"})
    assert (
        page.status_code == 403
        and "GPU/NPU budget of 0.001 device-hours this week is used up" in page.text
    )
    assert "HTTP 403" not in page.text and "error (" not in page.text, page.text[-3000:]
    # a CPU-only server may still start
    cpu = alice.api("POST", "/users/alice/server", json={"profile": "cpu"})
    assert cpu.status_code in (201, 202), cpu.text
    alice.wait_ready("alice")

    # the admin's override lifts the limit
    teacher_xsrf_free = admin_api.client.put(
        "/api/users/alice/quota", json={"gpu_hours_per_week": 100}
    )
    assert (
        teacher_xsrf_free.status_code == 200
        and teacher_xsrf_free.json()["gpu_hours_per_week"] == 100
    )
    alice.stop_server("alice")
    again = alice.api("POST", "/users/alice/server", json={"profile": "gpu-1"})
    assert again.status_code in (201, 202), again.text
    alice.wait_ready("alice")
    alice.stop_server("alice")


@pytest.mark.parametrize("failover_open", [True, False])
def test_usage_database_down(make_hub, failover_open):
    """Nothing answers at the usage database's address: failover_open decides whether servers
    start; either way the hub itself keeps working."""
    hub = usage_hub(
        make_hub,
        **{
            "usage.db_url": "postgresql://postgres@127.0.0.1:1/nowhere",
            "usage.failover_open": str(failover_open).lower(),
        },
    )
    start_hub(hub)  # the usage service runs too, and says why it has no data
    alice = login(hub, "alice", ALICE_PW)
    down = UsageAPI(hub, alice.new_token("alice")).get("/api/users/alice/limits")
    assert down.status_code == 503 and "unavailable" in down.text, down.text
    response = alice.api("POST", "/users/alice/server")
    if failover_open:
        assert response.status_code in (201, 202), response.text
        alice.wait_ready("alice")
        alice.stop_server("alice")  # the stop hook logs the failure; the stop itself succeeds
        hub.wait_log("Usage: could not record")
    else:
        assert response.status_code == 503, response.text
        assert "usage.failover_open is false" in response.text
        assert not alice.api("GET", "/users/alice").json()["servers"]
