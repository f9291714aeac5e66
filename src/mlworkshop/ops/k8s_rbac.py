"""`mlworkshop k8s rbac`: the cluster-wide reads the hub needs beyond a namespaced Role.

The Zero to JupyterHub chart binds the hub's ServiceAccount to a Role in the release's namespace
(pods, claims, secrets, services; events read): enough to run students' pods, but a Role cannot
reach what is not in a namespace. Without more, the hub inside the cluster offers no GPU/NPU
profile (it sizes them from what the nodes advertise: `list nodes`), and `mlworkshop k8s doctor`
run with the hub's credentials cannot see storage classes or nodes. This builds the ClusterRole
and ClusterRoleBinding that add those reads — read-only, nothing a student's pod could use.

Usage samples (CPU and memory per pod) come from each node's kubelet through the API server's
node proxy (`get nodes/proxy`). That grant reaches the whole kubelet API of every node, not only
its stats, so it is added only when asked for (`--kubelet-stats`): without it usage still records
sessions and device-hours from the pods, only the samples are missing (the doctor says so).

Pure: names in, a list of manifests out.
"""

from __future__ import annotations

from typing import Any

CHART_SERVICE_ACCOUNT = "hub"  # the chart's hub ServiceAccount (hub.serviceAccount.name unset)

NODE_READS: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get", "list"]},
]
KUBELET_STATS: dict[str, Any] = {"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]}


def rbac_name(namespace: str) -> str:
    """One ClusterRole and binding per hub namespace, so two hubs on one cluster don't share."""
    return f"mlworkshop-hub-{namespace}"


def hub_cluster_rbac(
    namespace: str, service_account: str = CHART_SERVICE_ACCOUNT, kubelet_stats: bool = False
) -> list[dict[str, Any]]:
    """The ClusterRole with the node and storage-class reads (and the kubelet's stats when
    asked), bound to NAMESPACE's SERVICE_ACCOUNT."""
    name = rbac_name(namespace)
    labels = {"app.kubernetes.io/managed-by": "mlworkshop"}
    rules = [*NODE_READS, *([KUBELET_STATS] if kubelet_stats else [])]
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name, "labels": labels},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": labels},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": service_account, "namespace": namespace}
            ],
        },
    ]
