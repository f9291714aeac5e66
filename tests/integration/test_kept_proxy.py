"""hub/kept_proxy.py on a real hub: the proxy outlives a hub restart and the next hub adopts it,
so a student's kernel connection made before the restart still works after it; a changed start
gets a new proxy; `mlworkshop down` stops it; a pid file that names another process is neither
adopted nor killed; an adopted proxy that dies is started again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import psutil
import pytest
import websockets

from mlworkshop import cgroups
from mlworkshop.hub.kept_proxy import PROXY_CGROUP
from mlworkshop.hub.proxy_process import has_ended

from .hubctl import Server, execute, free_port, mlw, wait_until

PW = "Kept-proxy-pw-42"


def proxy_pid(hub) -> int:
    return int((hub.site / "state" / "proxy.pid").read_text())


def ended(pid: int) -> bool:
    """Gone, or exited and not yet reaped (proxy_process.has_ended)."""
    try:
        return has_ended(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return True


def start_with_alice(make_hub):
    hub = make_hub()
    mlw(hub.site, "user", "add", "alice", "--password-stdin", input=PW + "\n")
    hub.start()
    alice = hub.browser()
    assert alice.login("alice", PW).status_code == 302
    alice.start_server("alice")
    return hub, Server(hub.url, "alice", alice.new_token("alice"))


async def test_a_hub_restart_keeps_the_proxy_and_the_students_connections(make_hub):
    hub, server = start_with_alice(make_hub)
    pid = proxy_pid(hub)
    if os.geteuid() == 0 and cgroups.detect() is not None:
        # out of the hub's group: a systemd stop of the hub's unit leaves it running too
        assert f"/mlworkshop/{PROXY_CGROUP}" in Path(f"/proc/{pid}/cgroup").read_text()
    kernel = server.client.post(f"{server.prefix}/api/kernels", json={"name": "python3"})
    assert kernel.status_code == 201, kernel.text
    url = server.base.replace("http", "ws") + f"{server.prefix}/api/kernels/"
    async with websockets.connect(
        url + kernel.json()["id"] + "/channels",
        additional_headers={"Authorization": f"token {server.token}"},
    ) as ws:
        assert await execute(ws, "x = 41; print('set')") == "set\n"
        assert server.contents("GET", "work").status_code == 200

        hub.stop()
        assert not ended(pid), "the proxy stopped with the hub"
        hub.wait_log("`mlworkshop down` stops it")
        # the hub is down: her server still answers through the proxy, /hub/ does not
        assert server.contents("GET", "work").status_code == 200
        assert httpx.get(hub.url + "/hub/health", timeout=10).status_code == 503

        hub.start()
        hub.wait_log("Kept the proxy that was running")
        assert proxy_pid(hub) == pid
        # the websocket opened before the restart still reaches her kernel
        assert await execute(ws, "print(x + 1)") == "42\n"
    # and the new hub serves through it
    assert httpx.get(hub.url + "/hub/health", timeout=10).status_code == 200
    assert server.contents("GET", "work").status_code == 200


def test_a_changed_start_gets_a_new_proxy_and_down_stops_everything(make_hub):
    hub = make_hub()
    hub.start()
    old_pid, old_port = proxy_pid(hub), hub.port
    hub.stop()
    # the port the kept proxy holds is no "port in use by something else" for doctor
    report = json.loads(mlw(hub.site, "doctor", "--json", check=False).stdout)
    [ports] = [f for f in report["findings"] if f["id"] == "ports"]
    assert ports["severity"] == "ok", ports
    hub.port = free_port()
    mlw(hub.site, "config", "set", "hub.port", str(hub.port))
    hub.start()  # the kept proxy holds the old port; the new hub stops it and starts its own
    new_pid = proxy_pid(hub)
    assert new_pid != old_pid
    wait_until(lambda: ended(old_pid), 15, "the old proxy gone")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{old_port}/hub/health", timeout=5)

    done = mlw(hub.site, "down")
    assert f"hub: stopped (pid {hub.proc.pid})" in done.stdout
    assert f"proxy: stopped (pid {new_pid})" in done.stdout
    hub.proc.wait(30)
    assert ended(new_pid)
    assert not (hub.site / "state" / "proxy.pid").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(hub.url + "/hub/health", timeout=5)
    again = mlw(hub.site, "down")
    assert "hub: was not running" in again.stdout and "proxy: was not running" in again.stdout


def test_a_pid_file_naming_another_process_is_neither_adopted_nor_killed(make_hub):
    """The pid a kept proxy had can be reused by anything once it died: the next hub must not
    take that process for its proxy, nor signal it (JupyterHub's own start kills whatever its
    pid file names)."""
    hub = make_hub()
    hub.start()
    hub.stop()  # leaves the proxy, its pid file and its fingerprint
    os.kill(proxy_pid(hub), signal.SIGKILL)
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        (hub.site / "state" / "proxy.pid").write_text(str(bystander.pid))
        hub.start()
        assert bystander.poll() is None, "the hub killed a process that was not its proxy"
        assert proxy_pid(hub) != bystander.pid
        assert "Kept the proxy" not in hub.log()
    finally:
        bystander.kill()
        bystander.wait()


def test_an_adopted_proxy_that_dies_is_started_again(make_hub):
    hub, server = start_with_alice(make_hub)
    hub.stop()
    hub.start()
    hub.wait_log("Kept the proxy that was running")
    os.kill(proxy_pid(hub), signal.SIGKILL)
    # JupyterHub's check (every 5 s) finds it gone, starts a proxy and puts the routes back
    wait_until(
        lambda: server.contents("GET", "work").status_code == 200 if _answers(hub) else False,
        60,
        "alice's server through a new proxy",
        every=0.5,
    )
    assert not ended(proxy_pid(hub))


def _answers(hub) -> bool:
    try:
        return httpx.get(hub.url + "/hub/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
