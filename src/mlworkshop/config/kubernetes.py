"""The spawner.kubernetes section of mlworkshop.yaml: one pod per user (KubeSpawner).

Two ways to run the hub read the same section: outside the cluster (`mlworkshop up` with a
kubeconfig; the hub reaches pods by pod IP and pods reach the hub at `hub_connect_url`) or inside
it through the Zero to JupyterHub chart (`mlworkshop k8s values`; kubeconfig empty: the pod's own
service account). Storage has two shapes: `hostPath` (a single-node cluster whose node holds the
site folder: the same files the local backend uses) or `pvc` (a claim per user for work/, and one
shared volume, a claim or an NFS export, laid out like the site: content/{lessons,datasets,models}
and submissions/<name>).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import Section, check_non_root_user

# The extended resource each kind of device is requested as (the device plugins' names).
DEFAULT_RESOURCES = {"nvidia": "nvidia.com/gpu", "ascend": "huawei.com/Ascend910"}

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?([KMGTPE]i?)?$")


class SharedVolumeConfig(Section):
    """Where content/ (read-only for students) and submissions/ live, for every node."""

    type: Literal["hostPath", "pvc", "nfs"] = Field(
        "hostPath",
        description="hostPath: the site's own folders on the node (single-node clusters; the "
        "hub runs on that node); pvc: a ReadWriteMany claim (ROX is enough if nobody hands "
        "in) holding content/ and submissions/; nfs: an NFS export holding the same.",
    )
    claim: str = Field(
        "mlworkshop-shared",
        description="pvc: name of the existing claim in the namespace (content/ and submissions/ "
        "at its top).",
    )
    nfs_server: str = Field("", description="nfs: the server's address.")
    nfs_path: str = Field(
        "/", description="nfs: the exported path holding content/ and submissions/."
    )

    @model_validator(mode="after")
    def _complete(self) -> SharedVolumeConfig:
        if self.type == "nfs" and not self.nfs_server:
            raise ValueError("type nfs needs nfs_server (the NFS server's address)")
        if self.type == "pvc" and not _DNS_LABEL.match(self.claim):
            raise ValueError(f"claim {self.claim!r} is not a valid Kubernetes name")
        return self


class KubernetesBackendConfig(Section):
    namespace: str = Field(
        "mlworkshop", description="Namespace of users' pods and claims (it must exist)."
    )
    kubeconfig: str = Field(
        "",
        description="Path of the kubeconfig the hub (and `mlworkshop k8s ...`) uses when it runs "
        "outside the cluster, e.g. /etc/mlworkshop/kubeconfig or MicroK8s' "
        "/var/snap/microk8s/current/credentials/client.config. Empty: the in-cluster service "
        "account, else $KUBECONFIG or ~/.kube/config.",
    )
    hub_connect_url: str = Field(
        "",
        description="URL pods use to reach the hub's API. Hub outside the cluster: this machine's "
        "address as pods see it, e.g. http://10.1.0.1:881 (the hub's API then listens on every "
        "address). Empty: the chart's hub service (hub inside the cluster).",
    )
    image: str = Field(
        "localhost/mlworkshop-user:latest",
        description="Image of users' servers (on offline clusters load it on every node: "
        "`mlworkshop images load --containerd`).",
    )
    profile_images: dict[str, str] = Field(
        default_factory=dict,
        description="Spawn profile -> image, e.g. {gpu: localhost/mlworkshop-user:cuda}. A key "
        "matches a profile's slug (gpu-2) or its kind before the dash (gpu, npu, cpu).",
    )
    image_pull_policy: Literal["IfNotPresent", "Always", "Never"] = Field(
        "IfNotPresent",
        description="Never: the image must be on the node (offline clusters); IfNotPresent: pull "
        "when missing; Always: pull before every start.",
    )
    home: str = Field(
        "/home/jovyan",
        description="The folder users land in inside the pod (JupyterLab's root; work/, lessons/, "
        "datasets/, models/ and submissions/ are mounted below it).",
    )
    uid: str = Field(
        "auto",
        description="uid:gid users' pods run as. auto: the user's own system account's uid and "
        "gid when the hub runs as root outside the cluster (the same numbers as on the local "
        "backend, so files mean the same on every node), else 1000:100. Never root.",
    )
    storage: Literal["hostPath", "pvc"] = Field(
        "hostPath",
        description="Where each user's work/ lives. hostPath: <site>/users/<name>/work on the "
        "node (single-node clusters, the hub on that node); pvc: a claim per user (kept when the "
        "pod or the user goes away).",
    )
    storage_class: str = Field(
        "",
        description="pvc: storage class of users' claims (empty: the cluster's default class; "
        "`mlworkshop k8s doctor` checks it exists).",
    )
    storage_capacity: str = Field("10Gi", description="pvc: size of each user's claim, e.g. 10Gi.")
    shared: SharedVolumeConfig = Field(
        default_factory=SharedVolumeConfig,
        description="Where content/ (lessons, datasets, models: read-only) and submissions/ come "
        "from on every node.",
    )
    request_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description="CPU and memory requested (what the scheduler reserves) as a fraction of the "
        "profile's limits. 1: every server gets all of its limit guaranteed.",
    )
    resources: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_RESOURCES),
        description="Extended resource each device kind is requested as: {nvidia: nvidia.com/gpu, "
        "ascend: huawei.com/Ascend910}. The device plugin on the node picks the devices.",
    )
    node_selectors: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Spawn profile (slug or kind: cpu, gpu, npu, gpu-2) -> node labels its pods "
        "need, e.g. {gpu: {accelerator: a100}}.",
    )
    tolerations: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict,
        description="Spawn profile (slug or kind) -> tolerations of its pods, e.g. {gpu: [{key: "
        "nvidia.com/gpu, operator: Exists, effect: NoSchedule}]}.",
    )
    start_timeout: int | None = Field(
        None,
        ge=10,
        le=3600,
        description="Seconds a pod may take to start (pulling an image counts). Empty: "
        "spawner.start_timeout.",
    )
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="KubeSpawner traitlets passed as they are, e.g. {extra_pod_config: "
        "{priorityClassName: students}}.",
    )

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not _DNS_LABEL.match(value):
            raise ValueError("must be a Kubernetes namespace name (lowercase letters, digits, -)")
        return value

    @field_validator("uid")
    @classmethod
    def _uid(cls, value: str) -> str:
        return check_non_root_user(value)

    @field_validator("storage_capacity")
    @classmethod
    def _capacity(cls, value: str) -> str:
        if not _QUANTITY.match(value):
            raise ValueError("must be a Kubernetes quantity such as 10Gi or 500Mi")
        return value

    @field_validator("hub_connect_url")
    @classmethod
    def _hub_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be empty or an http(s):// URL such as http://10.1.0.1:881")
        return value.rstrip("/")

    @field_validator("home")
    @classmethod
    def _home(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path such as /home/jovyan")
        return value.rstrip("/") or "/"

    @field_validator("resources")
    @classmethod
    def _resources(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(DEFAULT_RESOURCES))
        if unknown:
            raise ValueError(f"device kinds are nvidia and ascend, not {', '.join(unknown)}")
        return {**DEFAULT_RESOURCES, **value}

    def uid_gid(self) -> tuple[int, int] | None:
        """The fixed uid:gid, or None for auto."""
        if self.uid == "auto":
            return None
        uid, _, gid = self.uid.partition(":")
        return int(uid), int(gid or uid)
