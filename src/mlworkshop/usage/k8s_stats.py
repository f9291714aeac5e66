"""CPU and memory of users' pods (kubernetes backend), from the kubelet's /stats/summary.

Asked through the API server's node proxy (`nodes/<node>/proxy/stats/summary`), so neither the
hub nor the usage service needs to reach the kubelets themselves: one read per node per round.
A pod's `usageCoreNanoSeconds` is its cgroup's cumulative CPU (the same counter the local
backend reads), `workingSetBytes` its memory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Hashable, Mapping
from typing import Any

from ..kubeapi import KubeError, api_message, run
from .collector import Reading

log = logging.getLogger("mlworkshop.usage")
_refused: set[str] = set()  # nodes whose stats the API server refused (told once)


def pod_reading(summary: Mapping[str, Any], namespace: str, pod: str):
    """(cpu seconds, memory bytes) of one pod in a kubelet's /stats/summary, or None."""
    for entry in summary.get("pods") or []:
        ref = entry.get("podRef") or {}
        if ref.get("name") == pod and ref.get("namespace") == namespace:
            cpu = (entry.get("cpu") or {}).get("usageCoreNanoSeconds")
            mem = (entry.get("memory") or {}).get("workingSetBytes")
            if cpu is None:
                return None
            return cpu / 1e9, int(mem or 0)
    return None


async def _readings(api, pods: Mapping[Hashable, tuple[str, str]]) -> dict[Hashable, Reading]:
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.exceptions import ApiException

    core = client.CoreV1Api(api)
    nodes: dict[str, list[tuple[Hashable, str, str]]] = {}
    for key, (namespace, name) in pods.items():
        try:
            pod = await core.read_namespaced_pod(name, namespace)
        except ApiException as exc:
            log.debug("no pod %s/%s: %s", namespace, name, exc.status)
            continue
        if pod.spec.node_name:
            nodes.setdefault(pod.spec.node_name, []).append((key, namespace, name))
    out: dict[Hashable, Reading] = {}
    for node, wanted in nodes.items():
        try:
            # the raw body: the client would turn the JSON into a Python repr of it. Unread,
            # an error status does not raise: the body is then the API server's Status
            response = await core.connect_get_node_proxy_with_path(
                node, "stats/summary", _preload_content=False
            )
            body = await response.read()
            if response.status >= 400:
                raise ApiException(status=response.status, reason=response.reason) from None
            summary = json.loads(body)
        except ApiException as exc:
            if exc.status == 403:  # no `get nodes/proxy`: said once, not every round
                if node not in _refused:
                    _refused.add(node)
                    log.warning(
                        "No CPU/memory samples from node %s: the hub may not get nodes/proxy "
                        "(`mlworkshop k8s rbac --kubelet-stats` grants it); sessions and "
                        "device-hours are still recorded",
                        node,
                    )
            else:
                log.warning("No stats from node %s's kubelet: %s", node, api_message(exc))
            continue
        except ValueError as exc:
            log.warning("No stats from node %s's kubelet: %s", node, exc)
            continue
        _refused.discard(node)
        for key, namespace, name in wanted:
            reading = pod_reading(summary, namespace, name)
            if reading is not None:
                out[key] = Reading(cpu_total=reading[0], mem_bytes=reading[1], processes=0)
    return out


def pod_readings(kubeconfig: str, pods: Mapping[Hashable, str]) -> dict[Hashable, Reading]:
    """{key: "namespace/name"} -> {key: Reading} for the pods that run (blocking)."""
    wanted = {}
    for key, ref in pods.items():
        namespace, _, name = ref.partition("/")
        if namespace and name:
            wanted[key] = (namespace, name)
    if not wanted:
        return {}
    try:
        return run(kubeconfig, lambda api: _readings(api, wanted))
    except KubeError as exc:
        log.warning("Usage: no pod samples this round: %s", exc)
        return {}


def pod_sample(kubeconfig: str, namespace: str, pod: str):
    """One pod's reading as a usage SampleIn (the hub's last sample before it stops the pod)."""
    from .models import utcnow
    from .store import SampleIn

    reading = pod_readings(kubeconfig, {"pod": f"{namespace}/{pod}"}).get("pod")
    if reading is None:
        return None
    return SampleIn(0, utcnow(), reading.cpu_total, reading.mem_bytes, cpu_departed=0.0)
