"""spawner.docker.network host on a real root hub driving podman: each student's container
listens on the host's network at a port the hub picked, and the hub believes that port only
when the student's own account listens on it (hub/server_port.py, hub/docker_backend.py).

On the host's network a student's kernel can bind any free port, so a student who keeps binding
ports can catch the one meant for a classmate's server; the hub would then route the classmate
to the student's listener. Every container is told one fixed port here (jupyterhub_config.d pins
the hub's pick), so the race a busy host wins by chance happens every time. The student's
listener runs on the host as the student's account (`runuser`): to the kernel it is the same
socket owner as the student's kernel in a host-network container.
"""

from __future__ import annotations

import os
import pwd
import time

import pytest

from tests.attacks.test_attack_server_port import _listens, listening_as
from tests.integration.hubctl import Server, free_port, mlw, wait_until

from .test_docker_hub import container_of, docker_settings

pytestmark = [pytest.mark.containers, pytest.mark.integration]

PASSWORD = "Host-network-pass-7"


def _start_failed(browser, name: str, timeout: float = 120) -> dict:
    """The user's model once their start has ended (a quick failure answers 500 at once)."""
    response = browser.api("POST", f"/users/{name}/server")
    assert response.status_code in (201, 202, 500), response.text
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = browser.api("GET", f"/users/{name}").json()
        if not model.get("pending"):
            return model
        time.sleep(0.25)
    raise AssertionError(f"{name}'s start still pending after {timeout}s")


@pytest.mark.skipif(os.geteuid() != 0, reason="network host needs a root hub (one uid per student)")
def test_host_network_servers_are_believed_only_on_their_own_account(
    make_hub, engine, test_image, client, cleanup_containers
):
    port = free_port()
    hub = make_hub(**docker_settings(engine, test_image), **{"spawner.docker.network": "host"})
    cleanup_containers(str(hub.site))
    extra = hub.site / "jupyterhub_config.d"
    extra.mkdir(exist_ok=True)
    (extra / "one_port.py").write_text(
        "from mlworkshop.hub import server_port\n"
        f"server_port.pick = lambda *args, **kwargs: {port}\n"
    )
    for name in ("alice", "mal", "vic"):
        mlw(hub.site, "user", "add", name, "--password-stdin", input=PASSWORD + "\n")
    hub.start()
    browsers = {name: hub.browser() for name in ("alice", "mal", "vic")}
    for name, browser in browsers.items():
        assert browser.login(name, PASSWORD).status_code == 302

    # 1. each student's container on the host's network: their server on the port, files theirs
    #    (one after the other: every server is told the same port here)
    for name in ("alice", "mal"):
        browsers[name].start_server(name, timeout=120)
        assert container_of(client, hub, name)["HostConfig"]["NetworkMode"] == "host"
        server = Server(hub.url, name, browsers[name].new_token(name))
        assert server.write_text("work/mine.txt", name).status_code == 201
        owner = (hub.site / "users" / name / "work" / "mine.txt").stat().st_uid
        assert owner == pwd.getpwnam(hub.prefix + name).pw_uid
        browsers[name].stop_server(name)

    # 2. mal listens on the port meant for vic's server (as her kernel on the host's network
    #    could): vic's start fails with the reason in the log, his container is removed, and
    #    mal's listener hears nothing of /user/vic
    mal_uid = pwd.getpwnam(hub.prefix + "mal").pw_uid
    with listening_as(hub.prefix + "mal", port) as heard:
        model = _start_failed(browsers["vic"], "vic")
    assert "/user/vic" not in heard["asked"], f"vic's requests reached mal's listener: {heard}"
    assert not model.get("servers"), f"vic was given a server on mal's port: {model}"
    hub.wait_log(f"Port {port} on the host's network was taken by uid {mal_uid}")
    labels = [f"org.mlworkshop.site={hub.site}", "org.mlworkshop.user=vic"]
    assert not client.containers(all=True, filters={"label": labels}), "vic's container was left"

    # 3. the port is free again: vic's next start gets his own server there
    wait_until(lambda: not _listens(port), timeout=30, what="mal's listener to go")
    browsers["vic"].start_server("vic", timeout=120)
    vic = Server(hub.url, "vic", browsers["vic"].new_token("vic"))
    assert vic.write_text("work/mine.txt", "vic").status_code == 201
    owner = (hub.site / "users" / "vic" / "work" / "mine.txt").stat().st_uid
    assert owner == pwd.getpwnam(hub.prefix + "vic").pw_uid
