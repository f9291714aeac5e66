"""The test cluster itself (scripts/k8s-cluster.sh): a Ready node of the version built, and a real
pod of the singleuser test image that kubectl execs into, that the host reaches by its pod IP
(how a hub outside the cluster reaches students' servers), and that is gone once deleted."""

from __future__ import annotations

import ipaddress
import json
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


def _web_pod(name: str, image: str, labels: dict | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "web",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-m", "http.server", "8888"],
                    "readinessProbe": {"tcpSocket": {"port": 8888}, "periodSeconds": 1},
                    "securityContext": {"runAsUser": 1000, "allowPrivilegeEscalation": False},
                }
            ],
        },
    }


def test_services_and_cluster_dns(k8s_cluster, k8s_namespace, k8s_test_image):
    """What the Zero to JupyterHub chart's pods rely on: a Service reached by its name through
    cluster DNS (CoreDNS) and its ClusterIP (kube-proxy), pod to pod on the one bridge, and the
    API server as the `kubernetes` Service (what an in-cluster hub's KubeSpawner calls)."""
    ns = k8s_namespace
    k8s_cluster.apply(
        [
            _web_pod("web", k8s_test_image, {"app": "web"}),
            _web_pod("client", k8s_test_image),
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8888}]},
            },
        ],
        namespace=ns,
    )
    for pod in ("web", "client"):
        k8s_cluster.kubectl(
            "wait", "--for=condition=Ready", f"pod/{pod}", "-n", ns, "--timeout=180s", timeout=200
        )
    token = secrets.token_hex(8)
    k8s_cluster.kubectl("exec", "web", "-n", ns, "--", "sh", "-c", f"echo {token} > marker.txt")
    # the Service's endpoints reach kube-proxy's rules a moment after the pod is ready (until then
    # its ClusterIP refuses): the client tries for a minute, as a chart's pods would
    script = (
        "import json, socket, ssl, time, urllib.request\n"
        "ip = socket.gethostbyname('web')\n"  # the search path: web.<ns>.svc.cluster.local
        "for _ in range(60):\n"
        "    try:\n"
        "        body = urllib.request.urlopen('http://web/marker.txt', timeout=20).read().decode()\n"
        "        break\n"
        "    except OSError as exc:\n"  # urllib's URLError holds the refusal as its reason
        "        if not isinstance(getattr(exc, 'reason', exc), ConnectionRefusedError):\n"
        "            raise\n"
        "        time.sleep(1)\n"
        "api = socket.gethostbyname('kubernetes.default.svc.cluster.local')\n"
        "ctx = ssl.create_default_context(cafile="
        "'/var/run/secrets/kubernetes.io/serviceaccount/ca.crt')\n"
        "code = urllib.request.urlopen('https://kubernetes.default.svc/livez', context=ctx,"
        " timeout=20).status\n"
        "print(json.dumps({'ip': ip, 'body': body.strip(), 'api': api, 'code': code}))\n"
    )
    out = k8s_cluster.kubectl(
        "exec", "client", "-n", ns, "--", "python3", "-c", script, timeout=120
    ).stdout
    seen = json.loads(out.strip().splitlines()[-1])
    service = k8s_cluster.get("service", "web", namespace=ns)
    assert seen["ip"] == service["spec"]["clusterIP"], seen
    assert seen["body"] == token, seen
    kubernetes = k8s_cluster.get("service", "kubernetes", namespace="default")
    assert seen["api"] == kubernetes["spec"]["clusterIP"] and seen["code"] == 200, seen
