"""The hub inside the cluster through the Zero to JupyterHub chart, end to end on the real cluster:
`mlworkshop k8s values` -> `helm upgrade --install` with our hub image -> the chart's hub and proxy
pods -> `mlworkshop user add` in the hub's pod -> a student logs in through the chart's proxy, her
server starts as a pod the in-cluster hub made (KubeSpawner through the `kubernetes` Service, with
only the chart's Role plus `mlworkshop k8s rbac`), JupyterLab answers through the proxy, her
`work/` is her own claim and `lessons/` is read-only.

Opt-in twice over: MLW_TEST_K8S=1 (the cluster) and MLW_Z2JH_CHART=DIR, the chart's folder (on a
connected machine: `helm pull jupyterhub/jupyterhub --untar`; the project ships no copy of it).
helm is built from the Go module proxy by `scripts/k8s-cluster.sh helm` (cached).

What stands in for a real cluster's parts: no registry, so the hub image (tests/containers' build
of deploy/docker/Dockerfile.hub, which has configurable-http-proxy too) also runs the chart's proxy
and the images are loaded into the node; no storage provisioner, so the claims bind to hostPath
volumes made here with a storage class of their own; the pre-puller, the image awaiter and the
user scheduler (images from registries) are off.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mlworkshop.ops.k8s_values import split_image
from tests.integration.hubctl import MLW, Browser, Server, mlw, wait_until

from .cluster import SCRIPT

CHART = os.environ.get("MLW_Z2JH_CHART", "")
CLASS = "mlw-manual"
PASSWORD = "Chart-class-42"

pytestmark = pytest.mark.skipif(
    not CHART or not (Path(CHART) / "Chart.yaml").exists(),
    reason="opt-in: MLW_Z2JH_CHART=DIR (the z2jh chart, `helm pull jupyterhub/jupyterhub "
    "--untar`) with MLW_TEST_K8S=1 runs the chart on the test cluster",
)


def _helm() -> str:
    built = subprocess.run(["bash", str(SCRIPT), "helm"], capture_output=True, text=True)
    if built.returncode != 0:
        pytest.fail(f"building helm failed: {built.stderr[-1500:]}")
    return built.stdout.strip().splitlines()[-1]


def _volumes(cluster, namespace: str, root: Path) -> None:
    """hostPath volumes of a class of our own: the hub's database, two students' work, the
    course's shared content (pre-bound to its claim)."""
    root.mkdir(parents=True, exist_ok=True)
    items = []
    for name, size, modes in [
        ("hub-db", "1Gi", ["ReadWriteOnce"]),
        ("work-1", "10Gi", ["ReadWriteOnce"]),
        ("work-2", "10Gi", ["ReadWriteOnce"]),
    ]:
        path = root / name
        path.mkdir()
        path.chmod(0o777)  # a provisioner's fresh volume; the pods run as their own uids
        items.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"{namespace}-{name}"},
                "spec": {
                    "capacity": {"storage": size},
                    "accessModes": modes,
                    "storageClassName": CLASS,
                    "persistentVolumeReclaimPolicy": "Delete",
                    "hostPath": {"path": str(path), "type": "Directory"},
                },
            }
        )
    course = root / "course"
    (course / "content" / "lessons").mkdir(parents=True)
    (course / "content" / "lessons" / "welcome.md").write_text("# 欢迎\n")
    (course / "submissions").mkdir()
    items.append(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"{namespace}-course"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteMany"],
                "storageClassName": CLASS,
                "claimRef": {"namespace": namespace, "name": "course"},
                "hostPath": {"path": str(course), "type": "Directory"},
            },
        }
    )
    cluster.apply(items)
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "course"},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": CLASS,
                "resources": {"requests": {"storage": "1Gi"}},
                "volumeName": f"{namespace}-course",
            },
        },
        namespace=namespace,
    )


def _pod_ip(cluster, namespace: str, selector: str) -> str | None:
    pods = cluster.get("pods", namespace=namespace)["items"]
    for pod in pods:
        labels = pod["metadata"].get("labels", {})
        ready = any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in pod.get("status", {}).get("conditions", [])
        )
        if all(labels.get(k) == v for k, v in (kv.split("=") for kv in selector.split(","))):
            if ready:
                return pod["status"]["podIP"]
    return None


def _hub_ready(cluster, namespace: str) -> bool:
    """True once the hub's pod is ready; fails at once, with its log, when it keeps crashing."""
    for pod in cluster.get("pods", namespace=namespace)["items"]:
        if pod["metadata"].get("labels", {}).get("component") != "hub":
            continue
        for status in pod.get("status", {}).get("containerStatuses", []):
            if status["restartCount"] >= 2:
                name = pod["metadata"]["name"]
                log = cluster.kubectl(
                    "logs", name, "-n", namespace, "--previous", "--tail=60", check=False
                )
                raise AssertionError(f"the hub's pod keeps crashing:\n{log.stdout}{log.stderr}")
            if status.get("ready"):
                return True
    return False


def test_the_chart_runs_the_hub_and_a_students_pod(
    tmp_path, k8s_cluster, k8s_namespace, k8s_test_image
):
    from tests.containers.test_hub_image import build_hub_image

    ns = k8s_namespace
    helm = _helm()
    hub_image = build_hub_image()
    k8s_cluster.load_image(hub_image)
    volumes = Path("/var/lib/mlworkshop-k8s-test") / ns
    _volumes(k8s_cluster, ns, volumes)

    site = tmp_path / "site"
    subprocess.run([*MLW, "init", "--site", str(site)], check=True, capture_output=True)
    for key, value in {
        "spawner.backend": "kubernetes",
        "spawner.kubernetes.namespace": ns,
        "spawner.kubernetes.storage": "pvc",
        "spawner.kubernetes.storage_class": CLASS,
        "spawner.kubernetes.shared": "{type: pvc, claim: course}",
        "spawner.kubernetes.image": k8s_test_image,
        "spawner.kubernetes.image_pull_policy": "Never",
        "spawner.kubernetes.request_fraction": "0.05",
        "spawner.kubernetes.start_timeout": "180",
        "accelerators.profiles": "{cpu: {cpu_limit: 1, mem_limit: 1G}}",
    }.items():
        mlw(site, "config", "set", key, value)
    values = tmp_path / "values.yaml"
    made = mlw(site, "k8s", "values", "--hub-image", hub_image)
    values.write_text(made.stdout)
    image = {**split_image(hub_image), "pullPolicy": "Never"}
    overlay = {
        "hub": {"db": {"pvc": {"storageClassName": CLASS}}, "image": image},
        "proxy": {"chp": {"image": image}, "service": {"type": "ClusterIP"}},
        "prePuller": {"hook": {"enabled": False}, "continuous": {"enabled": False}},
        "scheduling": {"userScheduler": {"enabled": False}, "userPlaceholder": {"enabled": False}},
    }
    overlay_file = tmp_path / "test-overlay.yaml"
    overlay_file.write_text(json.dumps(overlay))
    release = "mlw"
    installed = subprocess.run(
        [
            helm, "upgrade", "--install", release, CHART, "--namespace", ns,
            "--values", str(values), "--values", str(overlay_file),
            "--kubeconfig", str(k8s_cluster.kubeconfig), "--timeout", "2m",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )  # fmt: skip
    rbac = mlw(site, "k8s", "rbac")
    try:
        assert installed.returncode == 0, installed.stdout + installed.stderr
        wait_until(lambda: _hub_ready(k8s_cluster, ns), 300, "the hub pod ready", every=2)
        k8s_cluster.kubectl("apply", "-f", "-", input=rbac.stdout)

        # the admin's first step, inside the hub's pod (its site is on the hub's claim)
        add = k8s_cluster.kubectl(
            "exec", "-i", "deploy/hub", "-n", ns, "--",
            "mlworkshop", "user", "add", "alice", "--password-stdin",
            input=PASSWORD + "\n", check=False, timeout=120,
        )  # fmt: skip
        assert add.returncode == 0, add.stdout + add.stderr

        proxy = wait_until(
            lambda: _pod_ip(k8s_cluster, ns, "component=proxy"), 120, "the proxy pod ready", every=2
        )
        base = f"http://{proxy}:8000"
        alice = Browser(base)
        assert alice.login("alice", PASSWORD).status_code == 302
        alice.start_server("alice", timeout=240)
        # JupyterLab through the chart's proxy (the OAuth dance, as a browser)
        assert alice.client.get("/user/alice/lab").status_code == 200
        lab = Server(base, "alice", alice.new_token("alice"))
        listing = {item["name"] for item in lab.contents("GET", "").json()["content"]}
        assert {"work", "lessons", "submissions"} <= listing, listing

        # her pod: never root; work/ on her own claim; lessons/ from the course's, read-only
        pod = k8s_cluster.get("pod", "mlw-alice", namespace=ns)
        assert pod["spec"]["containers"][0]["securityContext"]["runAsUser"] != 0
        claims = {
            v["persistentVolumeClaim"]["claimName"]
            for v in pod["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        }
        assert {"mlw-work-alice", "course"} <= claims, claims
        assert lab.write_text("work/mine.txt", "hers").status_code == 201
        assert lab.read_text("lessons/welcome.md").json()["content"] == "# 欢迎\n"
        assert lab.write_text("lessons/graffiti.txt", "x").status_code in (403, 500)
        assert not (volumes / "course" / "content" / "lessons" / "graffiti.txt").exists()

        # `mlworkshop doctor` in the hub's pod checks the hub where students reach it: the
        # chart's proxy-public Service
        doctor = k8s_cluster.kubectl(
            "exec", "deploy/hub", "-n", ns, "--", "mlworkshop", "doctor", "--json",
            check=False, timeout=120,
        )  # fmt: skip
        findings = {f["id"]: f for f in json.loads(doctor.stdout)["findings"]}
        assert findings["hub"]["severity"] == "ok", findings["hub"]
        assert "proxy-public" in findings["hub"]["message"], findings["hub"]

        # the usage service beside the hub answers through the chart's proxy (its own pod)
        usage = alice.client.get("/services/usage/")
        assert usage.status_code == 200 and "/services/usage/" in str(usage.url), usage.url
    finally:
        subprocess.run(
            [helm, "uninstall", release, "-n", ns, "--kubeconfig", str(k8s_cluster.kubeconfig)],
            capture_output=True,
            timeout=300,
        )
        k8s_cluster.kubectl(
            "delete", "pod", "-n", ns, "--all", "--wait=true", check=False, timeout=300
        )
        k8s_cluster.kubectl(
            "delete", "clusterrolebinding,clusterrole", f"mlworkshop-hub-{ns}",
            "--ignore-not-found", check=False,
        )  # fmt: skip
        k8s_cluster.kubectl(
            "delete", "pv", *[f"{ns}-{n}" for n in ("hub-db", "work-1", "work-2", "course")],
            "--ignore-not-found", "--wait=false", check=False,
        )  # fmt: skip
        shutil.rmtree(volumes, ignore_errors=True)
