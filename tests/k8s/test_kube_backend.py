"""The kubernetes backend on the real cluster (scripts/k8s-cluster.sh): a real root hub OUTSIDE the
cluster (`mlworkshop up` with the cluster's kubeconfig) spawns students' pods of the singleuser test
image and reaches them by pod IP through its proxy; the pods reach the hub's API at the bridge's
host address.

What runs here: two students' JupyterLabs through the proxy; work/ surviving the pod's deletion;
lessons/ read-only; one student not reaching another's work/; submissions; the profile's limits in
the pod spec and in the container's cgroup; the pod's uid being the student's account's; a 1 x GPU
profile requesting nvidia.com/gpu and scheduling only once the node advertises it; a quota
refusal; the culler; a hub restart keeping pods; a usage session with samples; `k8s nodes`,
`k8s drain`, `k8s doctor` finding a missing storage class.
"""

from __future__ import annotations

import ipaddress
import json
import pwd
import sqlite3
import subprocess
import time

import pytest

from mlworkshop.ops.k8s import quantity
from tests.integration.conftest import make_hub  # noqa: F401 - the real-hub factory
from tests.integration.hubctl import MLW, Server, mlw

pytestmark = pytest.mark.timeout(900)

PW = "k8s-Secret-pass-42"


def host_ip(cluster) -> str:
    """The host's address on the pods' bridge (the subnet's first address)."""
    return str(ipaddress.ip_network(cluster.pod_subnet, strict=False)[1])


def k8s_hub(make_hub, cluster, namespace, image, users=("alice", "bob"), **settings):  # noqa: F811
    hub = make_hub()
    hub.configure(
        **{
            "spawner.local.user_prefix": hub.prefix,
            "spawner.local.admin_group": hub.admin_group,
            "spawner.backend": "kubernetes",
            "spawner.kubernetes.kubeconfig": str(cluster.kubeconfig),
            "spawner.kubernetes.namespace": namespace,
            "spawner.kubernetes.hub_connect_url": f"http://{host_ip(cluster)}:{hub.internal_port}",
            "spawner.kubernetes.image": image,
            "spawner.kubernetes.image_pull_policy": "Never",
            "spawner.kubernetes.start_timeout": 120,
            "culler.enabled": "false",
            # small enough for a 2-CPU node to hold two students (and a GPU one) at once
            "accelerators.profiles": "{cpu: {cpu_limit: 1, mem_limit: 1G}, "
            "per_device: {cpu_limit: 0.5, mem_limit: 768M}}",
            **settings,
        }
    )
    for name in users:
        mlw(hub.site, "user", "add", name, "--password-stdin", input=PW + "\n")
    return hub


def login(hub, name):
    browser = hub.browser()
    assert browser.login(name, PW).status_code == 302
    return browser


def pod(cluster, namespace, user) -> dict | None:
    result = cluster.kubectl(
        "get", "pod", f"mlw-{user}", "-n", namespace, "-o", "json", check=False
    )
    return json.loads(result.stdout) if result.returncode == 0 else None


def wait_gone(browser, user, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not browser.api("GET", f"/users/{user}").json().get("servers"):
            return
        time.sleep(0.5)
    raise AssertionError(f"the hub still lists {user}'s server after {timeout} s")


def in_pod(cluster, namespace, user, script) -> str:
    return cluster.kubectl("exec", "-n", namespace, f"mlw-{user}", "--", "sh", "-c", script).stdout


def usage_rows(hub, query, *args):
    db = sqlite3.connect(hub.site / "usage" / "usage.sqlite")
    try:
        return db.execute(query, args).fetchall()
    finally:
        db.close()


async def test_students_on_pods(make_hub, k8s_cluster, k8s_namespace, k8s_test_image):  # noqa: F811
    ns = k8s_namespace
    hub = k8s_hub(make_hub, k8s_cluster, ns, k8s_test_image, **{"usage.sample_every": 2})
    hub.start()
    alice, bob = login(hub, "alice"), login(hub, "bob")

    # both JupyterLabs start as pods and answer through the proxy (hub outside, pod IPs)
    alice.start_server("alice", timeout=180)
    bob.start_server("bob", timeout=180)
    assert alice.client.get("/user/alice/lab").status_code == 200
    assert bob.client.get("/user/bob/lab").status_code == 200  # the OAuth dance, as a browser
    a = Server(hub.url, "alice", alice.new_token("alice"))
    b = Server(hub.url, "bob", bob.new_token("bob"))
    listing = {item["name"] for item in a.contents("GET", "").json()["content"]}
    assert {"work", "lessons", "datasets", "models", "submissions"} <= listing

    # the pod runs as alice's own account (the local backend's uid), never root, with the CPU-only
    # profile's limits (1 CPU, 1G here) and half of them requested
    spec = pod(k8s_cluster, ns, "alice")["spec"]
    account = pwd.getpwnam(hub.prefix + "alice")
    container = spec["containers"][0]
    assert container["securityContext"]["runAsUser"] == account.pw_uid
    assert container["securityContext"]["runAsGroup"] == account.pw_gid
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    assert quantity(limits["cpu"]) == 1 and quantity(requests["cpu"]) == 0.5
    assert quantity(limits["memory"]) == 2**30 and quantity(requests["memory"]) == 2**29
    assert in_pod(k8s_cluster, ns, "alice", "id -u").strip() == str(account.pw_uid)
    # ... and the kernel enforces them: the container's cgroup (v2 or v1)
    cgroup = in_pod(
        k8s_cluster,
        ns,
        "alice",
        "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes;"
        "cat /sys/fs/cgroup/cpu.max 2>/dev/null || "
        "echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)",
    ).split()
    assert int(cgroup[0]) == 2**30
    assert int(cgroup[1]) / int(cgroup[2]) == pytest.approx(1.0)

    # work/ is hers and on the site; lessons/ is read-only for real; submissions/ her own
    assert a.write_text("work/notes.py", "print('mine')").status_code == 201
    on_host = hub.site / "users" / "alice" / "work" / "notes.py"
    assert on_host.read_text() == "print('mine')" and on_host.stat().st_uid == account.pw_uid
    assert a.write_text("lessons/graffiti.txt", "x").status_code in (403, 500)
    assert not (hub.site / "content" / "lessons" / "graffiti.txt").exists()
    assert a.write_text("submissions/hw.txt", "answer").status_code == 201
    assert (hub.site / "submissions" / "alice" / "hw.txt").read_text() == "answer"

    # bob's work/ is nowhere in alice's pod: not mounted, not reachable by the site's path
    assert b.write_text("work/secret.txt", "bob's").status_code == 201
    seen = await a.run_code(
        "import os\n"
        f"print(os.path.exists({str(hub.site / 'users' / 'bob')!r}))\n"
        "print(any('bob' in line for line in open('/proc/self/mountinfo')))\n"
        "print(sorted(os.listdir(os.path.expanduser('~/submissions'))))\n"
    )
    assert seen.split("\n")[:3] == ["False", "False", "['hw.txt']"]

    # work/ survives the pod being deleted: the hub sees the server gone, a new pod has the file
    k8s_cluster.kubectl("delete", "pod", "mlw-alice", "-n", ns, "--wait=true")
    wait_gone(alice, "alice")
    alice.start_server("alice", timeout=180)
    a = Server(hub.url, "alice", alice.new_token("alice"))
    assert a.read_text("work/notes.py").json()["content"] == "print('mine')"

    # usage: the pod's session with samples from the kubelet (CPU used, memory held)
    await a.run_code("sum(i * i for i in range(3_000_000))")
    deadline = time.monotonic() + 60
    rows = []
    while time.monotonic() < deadline:
        rows = usage_rows(
            hub,
            "SELECT s.id, s.container_id, count(m.id), max(m.mem_bytes), sum(m.cpu_seconds) "
            "FROM mlw_usage_sessions s JOIN mlw_usage_samples m ON m.session_id = s.id "
            "WHERE s.username = 'alice' AND s.backend = 'kubernetes' AND s.ended_at IS NULL "
            "GROUP BY s.id",
        )
        if rows and rows[0][2] >= 2 and rows[0][4] > 0:
            break
        time.sleep(1)
    assert rows, "no usage session with samples for alice's pod"
    (_, container_id, n_samples, mem, cpu) = rows[0]
    assert container_id == f"{ns}/mlw-alice" and n_samples >= 2 and mem > 0 and cpu > 0

    # a hub restart keeps the pods: the servers still answer afterwards
    uid_before = pod(k8s_cluster, ns, "bob")["metadata"]["uid"]
    hub.stop()
    assert pod(k8s_cluster, ns, "bob")["metadata"]["uid"] == uid_before
    hub.start()
    bob = login(hub, "bob")
    assert bob.api("GET", "/users/bob").json()["servers"][""]["ready"] is True
    assert bob.client.get("/user/bob/lab").status_code == 200
    assert pod(k8s_cluster, ns, "bob")["metadata"]["uid"] == uid_before

    # stop: the pod goes, the session closes as stopped
    bob.stop_server("bob")
    assert pod(k8s_cluster, ns, "bob") is None
    ended = usage_rows(
        hub, "SELECT end_reason FROM mlw_usage_sessions WHERE username = 'bob' ORDER BY id"
    )
    assert ended and ended[-1][0] == "stopped"


def test_gpu_profile_needs_a_node_that_advertises_it(
    make_hub,  # noqa: F811
    k8s_cluster,
    k8s_namespace,
    k8s_test_image,
):
    ns, node = k8s_namespace, k8s_cluster.node
    hub = k8s_hub(
        make_hub,
        k8s_cluster,
        ns,
        k8s_test_image,
        users=("alice", "carol"),
        **{
            # the GPU node's device, written by hand: profiles offer 1 x GPU whatever the nodes say
            "accelerators.inventory": "[{kind: nvidia, index: 0}]",
            "spawner.kubernetes.start_timeout": 20,
            "usage.quotas.users": "{carol: {gpu_hours_per_week: 0}}",
        },
    )
    hub.start()
    alice = login(hub, "alice")

    def capacity(value):
        patch = {"status": {"capacity": {"nvidia.com/gpu": value}}}
        if value is None:
            patch = [{"op": "remove", "path": "/status/capacity/nvidia.com~1gpu"}]
        k8s_cluster.kubectl(
            "patch",
            "node",
            node,
            "--subresource=status",
            *(["--type=json"] if value is None else []),
            "-p",
            json.dumps(patch),
            check=value is not None,
        )

    capacity(None)
    try:
        # no node advertises a GPU: the pod is never scheduled, the start fails with the reason
        started = alice.api("POST", "/users/alice/server", json={"profile": "gpu-1"})
        assert started.status_code in (201, 202), started.text
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and alice.api("GET", "/users/alice").json()["pending"]:
            time.sleep(0.5)
        assert not alice.api("GET", "/users/alice").json()["servers"]
        hub.wait_log("Insufficient nvidia.com/gpu")
        assert pod(k8s_cluster, ns, "alice") is None

        # the node advertises one: the same profile schedules there, requesting nvidia.com/gpu: 1
        capacity("1")
        started = alice.api("POST", "/users/alice/server", json={"profile": "gpu-1"})
        assert started.status_code in (201, 202), started.text
        alice.wait_ready("alice", timeout=180)
        spec = pod(k8s_cluster, ns, "alice")["spec"]
        resources = spec["containers"][0]["resources"]
        assert resources["limits"]["nvidia.com/gpu"] == "1"
        assert resources["requests"]["nvidia.com/gpu"] == "1"
        assert spec["nodeName"] == node
        assert quantity(resources["limits"]["cpu"]) == 0.5  # the per-device profile's limits
        # device-hours: the session holds the pod's one GPU (not booked in our allocator)
        rows = usage_rows(
            hub,
            "SELECT n_devices, device_kind, profile FROM mlw_usage_sessions "
            "WHERE username = 'alice' ORDER BY id DESC LIMIT 1",
        )
        assert rows == [(1, "nvidia", "gpu-1")]

        # `k8s nodes` shows the GPU in use and alice's pod on the node
        nodes = mlw(hub.site, "k8s", "nodes").stdout
        assert node in nodes and "nvidia.com/gpu 1/1" in nodes and "alice" in nodes

        # carol's GPU budget is 0: refused before anything starts, and said why
        carol = login(hub, "carol")
        refused = carol.api("POST", "/users/carol/server", json={"profile": "gpu-1"})
        assert refused.status_code == 403, refused.text
        assert pod(k8s_cluster, ns, "carol") is None
        alice.stop_server("alice")
    finally:
        capacity(None)


def test_drain_moves_students_off_the_node(make_hub, k8s_cluster, k8s_namespace, k8s_test_image):  # noqa: F811
    ns, node = k8s_namespace, k8s_cluster.node
    hub = k8s_hub(
        make_hub,
        k8s_cluster,
        ns,
        k8s_test_image,
        users=("alice",),
        **{"spawner.kubernetes.start_timeout": 30},
    )
    hub.start()
    alice = login(hub, "alice")
    alice.start_server("alice", timeout=180)
    try:
        drained = mlw(hub.site, "k8s", "drain", node, "--timeout", "90")
        assert f"evicted {ns}/mlw-alice" in drained.stdout
        assert k8s_cluster.get("node", node)["spec"].get("unschedulable") is True
        assert pod(k8s_cluster, ns, "alice") is None
        wait_gone(alice, "alice")
        assert "cordoned" in mlw(hub.site, "k8s", "nodes").stdout
        # a cordoned node takes no new server: the start fails, saying the pod was not scheduled
        alice.api("POST", "/users/alice/server")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and alice.api("GET", "/users/alice").json()["pending"]:
            time.sleep(0.5)
        assert not alice.api("GET", "/users/alice").json()["servers"]
    finally:
        mlw(hub.site, "k8s", "uncordon", node)
    assert not k8s_cluster.get("node", node)["spec"].get("unschedulable")
    alice.start_server("alice", timeout=180)  # and after uncordon it runs again
    alice.stop_server("alice")


def test_culler_stops_idle_pods(make_hub, k8s_cluster, k8s_namespace, k8s_test_image):  # noqa: F811
    ns = k8s_namespace
    hub = k8s_hub(
        make_hub,
        k8s_cluster,
        ns,
        k8s_test_image,
        users=("alice",),
        **{"culler.enabled": "true", "culler.timeout": 60, "culler.every": 10},
    )
    hub.start()
    alice = login(hub, "alice")
    alice.start_server("alice", timeout=180)
    assert pod(k8s_cluster, ns, "alice") is not None
    wait_gone(alice, "alice", timeout=240)  # idle 60 s, checked every 10 s
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and pod(k8s_cluster, ns, "alice") is not None:
        time.sleep(1)
    assert pod(k8s_cluster, ns, "alice") is None


def test_doctor_finds_a_missing_storage_class(tmp_path, k8s_cluster, k8s_namespace):
    site = tmp_path / "site"
    subprocess.run([*MLW, "init", "--site", str(site)], check=True, capture_output=True)
    for key, value in {
        "spawner.backend": "kubernetes",
        "spawner.kubernetes.kubeconfig": str(k8s_cluster.kubeconfig),
        "spawner.kubernetes.namespace": k8s_namespace,
        "spawner.kubernetes.storage": "pvc",
        "spawner.kubernetes.storage_class": "fast-ssd",
    }.items():
        mlw(site, "config", "set", key, value)
    result = mlw(site, "k8s", "doctor", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("ok") and "API server" in line for line in lines)
    assert any(line.startswith("ok") and "RBAC:" in line for line in lines)
    assert any(
        line.startswith("FAIL") and "storage class" in line and "fast-ssd" in line for line in lines
    ), result.stdout
    assert "Traceback" not in result.stdout + result.stderr

    # a namespace that does not exist, and an unreachable API: said, not a traceback
    mlw(site, "config", "set", "spawner.kubernetes.namespace", "no-such-ns")
    missing = mlw(site, "k8s", "doctor", check=False)
    assert missing.returncode == 1 and "kubectl create namespace no-such-ns" in missing.stdout
    mlw(site, "config", "set", "spawner.kubernetes.kubeconfig", str(tmp_path / "nope"))
    unreachable = mlw(site, "k8s", "nodes", check=False)
    assert unreachable.returncode == 2 and "does not exist" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr
