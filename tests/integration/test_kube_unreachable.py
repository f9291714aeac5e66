"""A real root hub with `spawner.backend: kubernetes` whose cluster is not there (the kubeconfig
names a closed port): the hub starts, a spawn fails with a sentence an admin can act on (not
aiohttp's bare "Cannot connect to host"), and nothing stays pending. The cluster tests proper are
in tests/k8s/."""

from __future__ import annotations

import time

import pytest

from .hubctl import mlw

pytestmark = pytest.mark.integration

PW = "k8s-Secret-pass-42"
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: gone, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: hub, user: {token: not-used}}]
contexts: [{name: gone, context: {cluster: gone, user: hub}}]
current-context: gone
"""


def test_spawn_without_a_cluster_says_why(make_hub):
    hub = make_hub()
    kubeconfig = hub.site / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    hub.configure(
        **{
            "spawner.local.user_prefix": hub.prefix,
            "spawner.local.admin_group": hub.admin_group,
            "spawner.backend": "kubernetes",
            "spawner.kubernetes.kubeconfig": str(kubeconfig),
            "spawner.kubernetes.hub_connect_url": f"http://127.0.0.1:{hub.internal_port}",
            "culler.enabled": "false",
        }
    )
    mlw(hub.site, "user", "add", "alice", "--password-stdin", input=PW + "\n")
    hub.start()
    alice = hub.browser()
    assert alice.login("alice", PW).status_code == 302
    # the answer can take over a minute: once in a full run (2026-12-04) the hub's clean-up of
    # the failed start held the POST 60 s (cause not found; see the session note), past the
    # client's 60 s; what this test checks is the message and that nothing stays pending
    alice.api("POST", "/users/alice/server", timeout=200)
    deadline = time.monotonic() + 180  # the client's own connection retries come first
    while time.monotonic() < deadline and alice.api("GET", "/users/alice").json()["pending"]:
        time.sleep(0.5)
    assert not alice.api("GET", "/users/alice").json()["servers"]
    log = hub.wait_log(
        "Unhandled error starting alice's server: The Kubernetes API is not reachable"
    )
    assert "spawner.kubernetes.kubeconfig" in log and "mlworkshop k8s doctor" in log

    # the admin's own check says the same, without a traceback
    doctor = mlw(hub.site, "k8s", "doctor", check=False)
    assert doctor.returncode == 1 and "could not be reached" in doctor.stdout
    assert "Traceback" not in doctor.stdout + doctor.stderr
