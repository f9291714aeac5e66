"""The hub with only what the Zero to JupyterHub chart gives it, on the real cluster.

The chart binds the hub's ServiceAccount (`hub`) to a Role in its namespace: pods, claims,
secrets and services (get, watch, list, create, delete), events (get, watch, list) — the chart's
templates/hub/rbac.yaml (z2jh 48ea50e). `mlworkshop k8s doctor` run with that account's token
must say what such a hub may and may not do, and fail on nothing a namespaced Role merely cannot
see; `mlworkshop k8s rbac | kubectl apply -f -` gives it the cluster-wide reads (nodes: GPU/NPU
profiles; storage classes), and `--kubelet-stats` the kubelet stats for usage samples.
"""

from __future__ import annotations

import json
import subprocess
import time

from ruamel.yaml import YAML

from mlworkshop.ops.k8s_rbac import rbac_name
from tests.integration.hubctl import MLW, mlw

CHART_HUB_ROLE = [
    {
        "apiGroups": [""],
        "resources": ["pods", "persistentvolumeclaims", "secrets", "services"],
        "verbs": ["get", "watch", "list", "create", "delete"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "watch", "list"]},
]


def _hub_account(cluster, namespace: str, tmp_path) -> str:
    """The chart's hub ServiceAccount and Role in NAMESPACE; a kubeconfig with its token."""
    rbac = "rbac.authorization.k8s.io"
    cluster.apply(
        [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "hub"}},
            {
                "apiVersion": f"{rbac}/v1",
                "kind": "Role",
                "metadata": {"name": "hub"},
                "rules": CHART_HUB_ROLE,
            },
            {
                "apiVersion": f"{rbac}/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "hub"},
                "subjects": [{"kind": "ServiceAccount", "name": "hub", "namespace": namespace}],
                "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "hub"},
            },
        ],
        namespace=namespace,
    )
    token = cluster.kubectl("create", "token", "hub", "-n", namespace, "--duration=1h").stdout
    admin = json.loads(
        cluster.kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout
    )
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": "hub", "user": {"token": token.strip()}}],
        "contexts": [
            {
                "name": "hub",
                "context": {
                    "cluster": admin["clusters"][0]["name"],
                    "user": "hub",
                    "namespace": namespace,
                },
            }
        ],
        "current-context": "hub",
    }
    path = tmp_path / "hub.kubeconfig"
    path.write_text(json.dumps(kubeconfig))
    path.chmod(0o600)
    return str(path)


def _lines(result) -> dict[str, str]:
    """doctor's output: {check name: its mark (ok / warn / FAIL)}."""
    out = {}
    for line in result.stdout.splitlines():
        mark, _, rest = line.partition(" ")
        name = rest.strip().split(":", 1)[0]
        if mark in ("ok", "warn", "FAIL") and name:
            out[name] = mark
    return out


def test_doctor_with_the_charts_hub_role_then_rbac_adds_the_cluster_reads(
    tmp_path, k8s_cluster, k8s_namespace
):
    ns = k8s_namespace
    site = tmp_path / "site"
    subprocess.run([*MLW, "init", "--site", str(site)], check=True, capture_output=True)
    for key, value in {
        "spawner.backend": "kubernetes",
        "spawner.kubernetes.kubeconfig": _hub_account(k8s_cluster, ns, tmp_path),
        "spawner.kubernetes.namespace": ns,
        "spawner.kubernetes.storage": "pvc",
        "spawner.kubernetes.shared": "{type: nfs, nfs_server: 10.1.0.5, nfs_path: /srv/course}",
    }.items():
        mlw(site, "config", "set", key, value)

    # what the chart's Role allows: pods and claims in the namespace. What it cannot see
    # (the namespace object, storage classes, nodes) is a warning that names the fix, not a FAIL
    restricted = mlw(site, "k8s", "doctor", check=False)
    said = restricted.stdout + restricted.stderr
    assert restricted.returncode == 0, said
    checks = _lines(restricted)
    assert checks.get("API server") == "ok", said
    assert checks.get("RBAC") == "ok", said
    assert checks.get("RBAC (nodes)") == "warn" and "mlworkshop k8s rbac" in said, said
    assert "FAIL" not in checks.values() and "Traceback" not in said, said

    # the admin applies what `k8s rbac` prints (with the kubelet's stats): the hub may now read
    # nodes and storage classes, and doctor checks them with the hub's own token
    printed = mlw(site, "k8s", "rbac", "--kubelet-stats")
    manifests = YAML(typ="safe", pure=True).load(printed.stdout)
    assert [m["kind"] for m in manifests["items"]] == ["ClusterRole", "ClusterRoleBinding"]
    try:
        k8s_cluster.kubectl("apply", "-f", "-", input=printed.stdout)
        granted = mlw(site, "k8s", "doctor", check=False)
        said = granted.stdout + granted.stderr
        checks = _lines(granted)
        assert checks.get("RBAC (nodes)") == "ok", said
        assert checks.get("RBAC (kubelet stats)") == "ok", said
        assert checks.get("nodes") == "ok" and k8s_cluster.node in said, said
        # the test cluster has no storage class: now the doctor can see that, and says it
        assert checks.get("storage class") == "FAIL" and granted.returncode == 1, said
        # still nothing beyond reads: the hub may not cordon a node
        can = k8s_cluster.kubectl(
            "auth", "can-i", "patch", "nodes", f"--as=system:serviceaccount:{ns}:hub", check=False
        )
        assert can.stdout.strip() == "no", can.stdout + can.stderr
    finally:
        name = rbac_name(ns)
        k8s_cluster.kubectl(
            "delete", "clusterrolebinding,clusterrole", name, "--ignore-not-found", check=False
        )


def test_usage_samples_need_kubelet_stats_and_say_so_once(
    tmp_path, k8s_cluster, k8s_namespace, caplog
):
    """The usage service reads pods' CPU/memory through `nodes/proxy`: with the chart's Role alone
    it gets none and says why once (not every sampling round); `k8s rbac --kubelet-stats` gives
    it the samples."""
    from mlworkshop.ops.k8s_rbac import hub_cluster_rbac
    from mlworkshop.usage.k8s_stats import pod_readings

    ns = k8s_namespace
    kubeconfig = _hub_account(k8s_cluster, ns, tmp_path)
    k8s_cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "jupyter-alice"},
            "spec": {
                "terminationGracePeriodSeconds": 0,
                # the cluster's own pause image: on the node already, does nothing
                "containers": [
                    {
                        "name": "c",
                        "image": "localhost/mlworkshop-pause:1",
                        "imagePullPolicy": "Never",
                    }
                ],
            },
        },
        namespace=ns,
    )
    k8s_cluster.kubectl(
        "wait",
        "--for=condition=Ready",
        "pod/jupyter-alice",
        "-n",
        ns,
        "--timeout=120s",
        timeout=150,
    )
    pods = {"alice": f"{ns}/jupyter-alice"}
    with caplog.at_level("WARNING", logger="mlworkshop.usage"):
        assert pod_readings(kubeconfig, pods) == {}
        assert pod_readings(kubeconfig, pods) == {}
    told = [r.getMessage() for r in caplog.records if "nodes/proxy" in r.getMessage()]
    assert len(told) == 1 and "--kubelet-stats" in told[0], caplog.text

    name = rbac_name(ns)
    try:
        k8s_cluster.apply(hub_cluster_rbac(ns, kubelet_stats=True))
        # the kubelet's stats lag a pod's start by a housekeeping round (~10 s)
        deadline = time.monotonic() + 60
        while not (readings := pod_readings(kubeconfig, pods)) and time.monotonic() < deadline:
            time.sleep(2)
        assert set(readings) == {"alice"} and readings["alice"].cpu_total >= 0, readings
    finally:
        k8s_cluster.kubectl(
            "delete", "clusterrolebinding,clusterrole", name, "--ignore-not-found", check=False
        )
