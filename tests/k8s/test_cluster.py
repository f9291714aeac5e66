"""The test cluster itself (scripts/k8s-cluster.sh): a Ready node of the version built, and a real
pod of the singleuser test image that kubectl execs into, that the host reaches by its pod IP
(how a hub outside the cluster reaches students' servers), and that is gone once deleted."""

from __future__ import annotations

import ipaddress
import secrets
import subprocess
import urllib.request

from .cluster import SCRIPT


def test_node_is_ready(k8s_cluster):
    node = k8s_cluster.get("node", k8s_cluster.node)
    conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == k8s_cluster.version
    assert info["containerRuntimeVersion"].startswith("containerd://")
    assert not [t for t in node["spec"].get("taints", []) if t["effect"] == "NoSchedule"]


def test_status_and_env(k8s_cluster):
    status = subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True, text=True)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"node {k8s_cluster.node}: Ready" in status.stdout
    env = subprocess.run(["bash", str(SCRIPT), "env"], capture_output=True, text=True, check=True)
    assert f"export KUBECONFIG={k8s_cluster.kubeconfig}" in env.stdout.splitlines()


def test_pod_exec_reach_by_ip_and_delete(k8s_cluster, k8s_namespace, k8s_test_image):
    ns = k8s_namespace
    k8s_cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web"},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "web",
                        "image": k8s_test_image,
                        "imagePullPolicy": "Never",
                        "command": ["python3", "-m", "http.server", "8888"],
                        "ports": [{"containerPort": 8888}],
                        "readinessProbe": {"tcpSocket": {"port": 8888}, "periodSeconds": 1},
                        "securityContext": {
                            "runAsUser": 1000,
                            "runAsNonRoot": True,
                            "allowPrivilegeEscalation": False,
                        },
                    }
                ],
            },
        },
        namespace=ns,
    )
    k8s_cluster.kubectl(
        "wait", "--for=condition=Ready", "pod/web", "-n", ns, "--timeout=180s", timeout=200
    )
    pod = k8s_cluster.get("pod", "web", namespace=ns)
    assert pod["spec"]["nodeName"] == k8s_cluster.node
    ip = ipaddress.ip_address(pod["status"]["podIP"])
    assert ip in ipaddress.ip_network(k8s_cluster.pod_subnet)

    # exec: runs in the container, as its user, in its working directory (what the server serves)
    token = secrets.token_hex(8)
    out = k8s_cluster.kubectl(
        "exec", "web", "-n", ns, "--", "sh", "-c", f"id -u; echo {token} > marker.txt"
    ).stdout
    assert out.strip() == "1000"
    # the host reaches the pod by its IP (the bridge network), and sees the file exec wrote
    with urllib.request.urlopen(f"http://{ip}:8888/marker.txt", timeout=30) as response:
        assert response.read().decode().strip() == token

    k8s_cluster.kubectl("delete", "pod", "web", "-n", ns, "--wait=true", timeout=120)
    gone = k8s_cluster.kubectl("get", "pod", "web", "-n", ns, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
