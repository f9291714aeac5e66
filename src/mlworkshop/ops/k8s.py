"""The lab admin's node operations on the kubernetes backend (`mlworkshop k8s nodes | cordon |
uncordon | drain | doctor`), through kubernetes_asyncio (kubeapi.py), never hand-written HTTP.

Joining a node is the distribution's job (MicroK8s `microk8s add-node`, kubeadm `kubeadm join`);
these are what an admin does around it: see what each node has and runs, take one out of
scheduling before it leaves, move what runs there away, and check that the hub can work.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ..config.kubernetes import KubernetesBackendConfig
from ..hub.k8s_objects import LABEL_USER
from ..kubeapi import KubeError, api_message

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


def quantity(text: str | None) -> float:
    """A Kubernetes quantity ('500m', '4', '16Gi', '1k') as a number (CPUs or bytes)."""
    if not text:
        return 0.0
    text = str(text)
    suffixes = {
        "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
        "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
        "E": 1e18,
    }  # fmt: skip
    for suffix in sorted(suffixes, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * suffixes[suffix]
    return float(text)


@dataclass
class NodeInfo:
    name: str
    ready: bool
    cordoned: bool
    cpu: float  # allocatable CPUs
    memory: float  # allocatable bytes
    cpu_requested: float = 0.0
    memory_requested: float = 0.0
    devices: dict[str, tuple[int, int]] = field(default_factory=dict)  # resource: (alloc, used)
    students: list[str] = field(default_factory=list)  # users with a pod here
    pods: int = 0


def _core(api):
    from kubernetes_asyncio import client

    return client.CoreV1Api(api)


def _running(pod) -> bool:
    return pod.status.phase not in ("Succeeded", "Failed")


def _requests(pod) -> dict[str, float]:
    """What a pod reserves on its node (its containers' requests; an extended resource's limit
    is its request)."""
    out: dict[str, float] = {}
    for container in pod.spec.containers or []:
        res = container.resources
        want = dict((res.limits or {}) if res else {})
        want.update((res.requests or {}) if res else {})
        for name, value in want.items():
            try:
                out[name] = out.get(name, 0.0) + quantity(value)
            except ValueError:
                continue
    return out


async def nodes(api, cfg: KubernetesBackendConfig) -> list[NodeInfo]:
    """Every node: ready/cordoned, allocatable CPU and memory and what pods requested, each device
    resource allocatable and in use, the students whose pods run there."""
    core = _core(api)
    node_list = await core.list_node()
    pods = await core.list_pod_for_all_namespaces()
    resources = sorted(set(cfg.resources.values()))
    infos: dict[str, NodeInfo] = {}
    for node in node_list.items:
        alloc = node.status.allocatable or {}
        ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
        info = NodeInfo(
            node.metadata.name,
            ready,
            bool(node.spec.unschedulable),
            quantity(alloc.get("cpu")),
            quantity(alloc.get("memory")),
        )
        for resource in resources:
            if resource in alloc and quantity(alloc[resource]) > 0:
                info.devices[resource] = (int(quantity(alloc[resource])), 0)
        infos[info.name] = info
    for pod in pods.items:
        info = infos.get(pod.spec.node_name or "")
        if info is None or not _running(pod):
            continue
        info.pods += 1
        req = _requests(pod)
        info.cpu_requested += req.get("cpu", 0.0)
        info.memory_requested += req.get("memory", 0.0)
        for resource in resources:
            if req.get(resource):
                alloc, used = info.devices.get(resource, (0, 0))
                info.devices[resource] = (alloc, used + int(req[resource]))
        user = (pod.metadata.labels or {}).get(LABEL_USER)
        if user and pod.metadata.namespace == cfg.namespace:
            info.students.append(user)
    return sorted(infos.values(), key=lambda n: n.name)


async def _node(core, name: str):
    from kubernetes_asyncio.client.exceptions import ApiException

    try:
        return await core.read_node(name)
    except ApiException as exc:
        if exc.status == 404:
            known = [n.metadata.name for n in (await core.list_node()).items]
            raise KubeError(
                f"There is no node {name!r} in the cluster (nodes: {', '.join(known) or 'none'})."
            ) from None
        raise KubeError(f"Could not read node {name}: {api_message(exc)}") from None


async def cordon(api, name: str, on: bool = True) -> bool:
    """Mark the node (un)schedulable; returns whether it changed."""
    core = _core(api)
    node = await _node(core, name)
    if bool(node.spec.unschedulable) == on:
        return False
    await core.patch_node(name, {"spec": {"unschedulable": on}})
    return True


@dataclass
class DrainResult:
    evicted: list[str]  # namespace/name
    skipped: list[str]  # DaemonSet and mirror pods (they belong to the node)
    remaining: list[str]  # still there when the time ran out


async def drain(api, name: str, timeout: float = 120) -> DrainResult:
    """Cordon the node, then evict every pod on it but DaemonSets' and static (mirror) pods,
    through the Eviction API (PodDisruptionBudgets are honoured), and wait until they are gone.
    A student's server stops like a crashed one: the hub sees the pod gone, closes the usage
    session, and the student starts again on another node (their work/ is on their claim)."""
    from kubernetes_asyncio.client.exceptions import ApiException

    core = _core(api)
    await cordon(api, name, True)
    pods = await core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={name}")
    evicted, skipped = [], []
    for pod in pods.items:
        ref = f"{pod.metadata.namespace}/{pod.metadata.name}"
        owners = pod.metadata.owner_references or []
        if MIRROR_ANNOTATION in (pod.metadata.annotations or {}) or any(
            o.kind == "DaemonSet" for o in owners
        ):
            skipped.append(ref)
            continue
        if not _running(pod):
            continue
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod.metadata.name, "namespace": pod.metadata.namespace},
        }
        try:
            await core.create_namespaced_pod_eviction(
                pod.metadata.name, pod.metadata.namespace, body
            )
            evicted.append(ref)
        except ApiException as exc:
            if exc.status == 404:
                continue
            raise KubeError(
                f"Could not evict {ref} from {name}: {api_message(exc)}. Try again later (a "
                "disruption budget may hold it), or stop that server first."
            ) from None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    remaining = list(evicted)
    while remaining and loop.time() < deadline:
        left = []
        for ref in remaining:
            namespace, _, pod_name = ref.partition("/")
            try:
                pod = await core.read_namespaced_pod(pod_name, namespace)
                if pod.spec.node_name == name:
                    left.append(ref)
            except ApiException as exc:
                if exc.status != 404:
                    left.append(ref)
        remaining = left
        if remaining:
            await asyncio.sleep(1)
    return DrainResult(evicted, skipped, remaining)


@dataclass
class Check:
    name: str
    ok: bool | None  # None: a warning (works, but look)
    detail: str


async def _can(api, namespace: str, verb: str, resource: str, group: str = "") -> bool:
    """What the API server's authorizer says these credentials may do (a sub-resource as
    `nodes/proxy`)."""
    from kubernetes_asyncio import client

    resource, _, subresource = resource.partition("/")
    attributes = {"namespace": namespace, "verb": verb, "resource": resource, "group": group}
    if subresource:
        attributes["subresource"] = subresource
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }
    result = await client.AuthorizationV1Api(api).create_self_subject_access_review(review)
    return bool(result.status.allowed)


async def doctor(
    api, cfg: KubernetesBackendConfig, device_kinds: list[str] | None = None
) -> list[Check]:
    """What the hub needs from the cluster, each with what to do when it is missing."""
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.exceptions import ApiException

    checks: list[Check] = []
    try:
        version = await client.VersionApi(api).get_code()
        checks.append(Check("API server", True, f"reachable, Kubernetes {version.git_version}"))
    except ApiException as exc:
        checks.append(Check("API server", False, f"answers with an error: {api_message(exc)}"))
        return checks
    core = _core(api)
    try:
        await core.read_namespace(cfg.namespace)
        checks.append(Check("namespace", True, cfg.namespace))
    except ApiException as exc:
        if exc.status == 403:  # a namespaced Role (the chart's hub) cannot read Namespaces
            checks.append(
                Check(
                    "namespace",
                    None,
                    f"{cfg.namespace}: these credentials may not read namespaces (a Role in it, "
                    "like the chart's hub); RBAC below says what they may do there",
                )
            )
        else:
            detail = (
                f"{cfg.namespace} does not exist: `kubectl create namespace {cfg.namespace}`"
                if exc.status == 404
                else f"{cfg.namespace}: {api_message(exc)}"
            )
            checks.append(Check("namespace", False, detail))

    needed = [(v, "pods") for v in ("create", "get", "list", "watch", "delete")]
    needed += [("list", "events")]
    if cfg.storage == "pvc":
        needed += [(v, "persistentvolumeclaims") for v in ("create", "get", "list")]
    missing = [
        f"{verb} {res}" for verb, res in needed if not await _can(api, cfg.namespace, verb, res)
    ]
    checks.append(
        Check(
            "RBAC",
            not missing,
            f"the hub may manage pods{' and claims' if cfg.storage == 'pvc' else ''} in "
            f"{cfg.namespace}"
            if not missing
            else f"the hub's credentials may not: {', '.join(missing)} in {cfg.namespace}. Bind "
            "it a Role with those verbs (the chart's hub Role has them).",
        )
    )

    rbac_hint = "`mlworkshop k8s rbac | kubectl apply -f -` (as a cluster admin)"
    may_list_nodes = await _can(api, "", "list", "nodes")
    checks.append(
        Check(
            "RBAC (nodes)",
            True if may_list_nodes else None,
            "the hub may list nodes (GPU/NPU profiles follow what they advertise)"
            if may_list_nodes
            else "the hub's credentials may not list nodes (cluster-wide): spawn profiles offer "
            f"no GPUs/NPUs unless accelerators.inventory names them. Grant it: {rbac_hint}.",
        )
    )
    may_read_stats = await _can(api, "", "get", "nodes/proxy")
    checks.append(
        Check(
            "RBAC (kubelet stats)",
            True if may_read_stats else None,
            "the hub may read the kubelets' stats (usage CPU/memory samples)"
            if may_read_stats
            else "the hub's credentials may not get nodes/proxy: usage records sessions and "
            "device-hours, but no CPU/memory samples. Grant it with `mlworkshop k8s rbac "
            "--kubelet-stats` (this reaches each node's whole kubelet API).",
        )
    )

    if cfg.storage == "pvc" and not await _can(api, "", "list", "storageclasses", "storage.k8s.io"):
        checks.append(
            Check(
                "storage class",
                None,
                f"not checked: these credentials may not list storage classes. {rbac_hint} "
                "lets the doctor see them.",
            )
        )
    elif cfg.storage == "pvc":
        classes = (await client.StorageV1Api(api).list_storage_class()).items
        names = [s.metadata.name for s in classes]
        default = [
            s.metadata.name
            for s in classes
            if (s.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class")
            == "true"
        ]
        if cfg.storage_class:
            ok = cfg.storage_class in names
            checks.append(
                Check(
                    "storage class",
                    ok,
                    f"{cfg.storage_class} exists"
                    if ok
                    else f"{cfg.storage_class} (spawner.kubernetes.storage_class) does not exist "
                    f"(classes: {', '.join(names) or 'none'}). Install a provisioner (MicroK8s: "
                    "`microk8s enable hostpath-storage`) or name an existing class.",
                )
            )
        else:
            checks.append(
                Check(
                    "storage class",
                    bool(default),
                    f"default class {default[0]}"
                    if default
                    else "no default storage class, and spawner.kubernetes.storage_class is "
                    f"empty (classes: {', '.join(names) or 'none'}): users' claims would wait "
                    "forever. Set storage_class, or mark a class as the default.",
                )
            )
    if cfg.shared.type == "pvc":
        try:
            await core.read_namespaced_persistent_volume_claim(cfg.shared.claim, cfg.namespace)
            checks.append(Check("shared volume", True, f"claim {cfg.shared.claim}"))
        except ApiException:
            checks.append(
                Check(
                    "shared volume",
                    False,
                    f"claim {cfg.shared.claim} (spawner.kubernetes.shared.claim) is not in "
                    f"{cfg.namespace}: create a ReadWriteMany claim holding content/ and "
                    "submissions/.",
                )
            )

    if not may_list_nodes:  # nodes, devices and images are seen on the nodes
        return checks
    node_list = (await core.list_node()).items
    ready = [
        n.metadata.name
        for n in node_list
        if not n.spec.unschedulable
        and any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
    ]
    checks.append(
        Check(
            "nodes",
            bool(ready),
            f"{len(ready)} ready and schedulable: {', '.join(ready)}"
            if ready
            else "no node is ready and schedulable (`mlworkshop k8s nodes`)",
        )
    )
    for kind in device_kinds or []:
        resource = cfg.resources[kind]
        having = [
            n.metadata.name
            for n in node_list
            if quantity((n.status.allocatable or {}).get(resource)) > 0
        ]
        checks.append(
            Check(
                f"{kind} devices",
                bool(having) or None,
                f"{resource} advertised by {', '.join(having)}"
                if having
                else f"no node advertises {resource}: install the device plugin on the GPU/NPU "
                "nodes (NVIDIA: the k8s-device-plugin DaemonSet; Ascend: "
                "ascend-device-plugin), or such profiles never schedule.",
            )
        )
    images = sorted({cfg.image, *cfg.profile_images.values()})
    for image in images:
        wanted = {image, f"docker.io/{image}", f"docker.io/library/{image}"}
        missing_on = [
            n.metadata.name
            for n in node_list
            if n.metadata.name in ready
            and not any(wanted & set(i.names or []) for i in n.status.images or [])
        ]
        checks.append(
            Check(
                f"image {image}",
                not missing_on or (None if cfg.image_pull_policy != "Never" else False),
                "on every ready node"
                if not missing_on
                else f"not on {', '.join(missing_on)}: load it there (`mlworkshop images load "
                "--containerd`)"
                + (" or let the nodes pull it" if cfg.image_pull_policy != "Never" else ""),
            )
        )
    return checks


def device_kinds_in_use(accelerators: Any) -> list[str]:
    """Kinds the site expects on the cluster: those of accelerators.inventory (written by hand
    on a Kubernetes site: what the GPU/NPU nodes have). Empty: nothing expected (profiles then
    follow what the nodes advertise)."""
    return sorted({d.kind for d in accelerators.inventory})
