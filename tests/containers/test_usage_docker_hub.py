"""Usage accounting with the docker backend on a real hub (podman's Docker-compatible socket):
the session records the container, the usage service samples it through container stats, and a
stop closes the session."""

from __future__ import annotations

import pytest

from tests.integration.test_usage_hub import (
    ADMIN_PW,
    ALICE_PW,
    UsageAPI,
    login,
    start_hub,
    usage_hub,
    wait_for,
)

from .test_docker_hub import docker_settings

pytestmark = [pytest.mark.containers, pytest.mark.integration]


def test_container_sessions_and_samples(make_hub, engine, test_image, cleanup_containers):
    hub = usage_hub(make_hub, **docker_settings(engine, test_image))
    cleanup_containers(str(hub.site))
    start_hub(hub)
    teacher = login(hub, "teacher", ADMIN_PW)
    alice = login(hub, "alice", ALICE_PW)
    admin_api = UsageAPI(hub, teacher.new_token("teacher"))
    alice.start_server("alice", timeout=180)
    [session] = admin_api.json("/api/sessions", params={"user": "alice", "state": "open"})
    assert session["backend"] == "docker", session
    samples = wait_for(
        lambda: admin_api.json(f"/api/sessions/{session['id']}/samples"),
        90,
        0.5,
        "container samples",
    )
    assert samples[-1]["mem_bytes"] > 20 * 2**20, samples[-1]  # a JupyterLab in a container
    alice.stop_server("alice")
    closed = admin_api.json(f"/api/sessions/{session['id']}")
    assert closed["end_reason"] == "stopped" and closed["end"] is not None
