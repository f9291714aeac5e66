"""Pure builders of the pieces of a user's pod on the kubernetes backend (as KubeSpawner's own
objects.py builds manifests): volumes and mounts, security context, resources, placement.

No API call and no file here, so every rule is tested without a cluster; hub/kube_backend.py
hands the results to KubeSpawner's traits and KubeSpawner writes the pod. Volumes and mounts are
plain dicts in the API's camelCase (what KubeSpawner accepts and `kubectl get -o yaml` shows).

The workspace is the one the other backends give (hub/workspace.py):
    <home>/work         the user's own: hostPath <site>/users/<name>/work, or their claim
    <home>/lessons, datasets, models   read-only, from the site's content (hostPath) or the shared
                        volume's content/<kind>
    <home>/submissions  the user's own hand-in folder (writable); admins: all of them, read-only
"""

from __future__ import annotations

import hashlib
import math
import re
import shlex
from pathlib import Path
from typing import Any

from ..config.docker import image_for_profile
from ..config.kubernetes import KubernetesBackendConfig
from ..site import CONTENT_KINDS

USERS_GROUP = 100  # 'users' in the images: their home is group-writable (as on the docker backend)
DEFAULT_UID = (1000, 100)  # the images' own user (jovyan), when no per-user account exists

LABEL_SITE = "mlworkshop.org/site"
LABEL_USER = "mlworkshop.org/user"


def pod_ids(cfg: KubernetesBackendConfig, account_ids: tuple[int, int] | None) -> tuple[int, int]:
    """uid and gid of a user's pod: spawner.kubernetes.uid when fixed, else the user's own
    account's (the local backend's numbers), else the images' user. Never root."""
    fixed = cfg.uid_gid()
    uid, gid = fixed or account_ids or DEFAULT_UID
    if uid == 0:
        raise ValueError(
            "User servers must not run as root: set spawner.kubernetes.uid to a uid:gid."
        )
    return uid, gid


def security(uid: int, gid: int, extra_gids: list[int]) -> dict[str, Any]:
    """KubeSpawner's uid/gid/fs_gid/supplemental_gids and a container context that cannot
    become root again (no privilege escalation, no capabilities, non-root enforced by the
    kubelet)."""
    return {
        "uid": uid,
        "gid": gid,
        "fs_gid": gid,  # a new claim's files belong to the user's own group
        "supplemental_gids": sorted({USERS_GROUP, *extra_gids} - {gid}),
        "privileged": False,
        "allow_privilege_escalation": False,
        "container_security_context": {
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def _mount(name: str, path: str, read_only: bool, sub_path: str | None = None) -> dict[str, Any]:
    mount: dict[str, Any] = {"name": name, "mountPath": path, "readOnly": read_only}
    if sub_path:
        mount["subPath"] = sub_path
    return mount


def _host_path(name: str, path: Path | str, kind: str = "Directory") -> dict[str, Any]:
    return {"name": name, "hostPath": {"path": str(path), "type": kind}}


def shared_volume(cfg: KubernetesBackendConfig) -> dict[str, Any]:
    """The volume holding content/ and submissions/ (pvc or nfs shapes)."""
    if cfg.shared.type == "pvc":
        return {"name": "shared", "persistentVolumeClaim": {"claimName": cfg.shared.claim}}
    return {"name": "shared", "nfs": {"server": cfg.shared.nfs_server, "path": cfg.shared.nfs_path}}


def workspace_volumes(
    cfg: KubernetesBackendConfig,
    *,
    username: str,
    is_admin: bool,
    site_root: Path,
    content_dir: Path,
    work_dir: Path,
    pvc_name: str,
) -> tuple[list[dict], list[dict]]:
    """(volumes, volume_mounts) of a user's pod. `work_dir`: the user's work/ on the node
    (hostPath storage); `pvc_name`: their claim (pvc storage)."""
    home = cfg.home.rstrip("/")
    volumes: list[dict] = []
    mounts: list[dict] = []
    if cfg.storage == "pvc":
        volumes.append({"name": "work", "persistentVolumeClaim": {"claimName": pvc_name}})
    else:
        volumes.append(_host_path("work", work_dir))
    mounts.append(_mount("work", f"{home}/work", False))

    if cfg.shared.type == "hostPath":
        for kind in CONTENT_KINDS:
            volumes.append(_host_path(kind, Path(content_dir) / kind))
            mounts.append(_mount(kind, f"{home}/{kind}", True))
        handed_in = Path(site_root) / "submissions"
        if is_admin:
            volumes.append(_host_path("submissions", handed_in))
            mounts.append(_mount("submissions", f"{home}/submissions", True))
        else:
            volumes.append(_host_path("submissions", handed_in / username))
            mounts.append(_mount("submissions", f"{home}/submissions", False))
        return volumes, mounts

    volumes.append(shared_volume(cfg))
    for kind in CONTENT_KINDS:
        mounts.append(_mount("shared", f"{home}/{kind}", True, f"content/{kind}"))
    if is_admin:
        mounts.append(_mount("shared", f"{home}/submissions", True, "submissions"))
    else:
        mounts.append(_mount("shared", f"{home}/submissions", False, f"submissions/{username}"))
    return volumes, mounts


def submissions_init_container(
    cfg: KubernetesBackendConfig, username: str, uid: int, admin_gid: int, image: str
) -> list[dict[str, Any]]:
    """On a shared claim or NFS export (nobody on the hub's machine can reach it), the user's
    hand-in folder is made by an init container: once, as the hostPath workspace step makes it
    (the user's, group = admins, 2750). It runs as root with only the shared volume mounted and
    never touches an existing entry (the student owns what is inside, never submissions/ itself).
    No braces in the script: KubeSpawner expands {…} in its objects."""
    if cfg.shared.type == "hostPath":
        return []
    folder = shlex.quote(f"/shared/submissions/{username}")
    script = (
        "set -e; mkdir -p /shared/submissions; "
        f"if [ ! -e {folder} ] && [ ! -L {folder} ]; then "
        f"mkdir -m 2750 {folder} && chown {uid}:{admin_gid} {folder}; fi"
    )
    return [
        {
            "name": "submissions-folder",
            "image": image,
            "command": ["sh", "-c", script],
            "securityContext": {"runAsUser": 0, "runAsNonRoot": False},
            "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
        }
    ]


def _cpu(value: float) -> float:
    return math.ceil(value * 1000) / 1000  # millicores: the API's finest grain


def resources(
    cfg: KubernetesBackendConfig,
    cpu_limit: float | None,
    mem_limit_bytes: int | None,
    device_kind: str | None,
    device_count: int,
) -> dict[str, Any]:
    """KubeSpawner's resource traits for a spawn profile: its CPU and memory as limits, a
    `request_fraction` of them as requests (what the scheduler reserves), and its devices as
    the extended resource of their kind (requests = limits, as Kubernetes requires; the device
    plugin picks the devices)."""
    out: dict[str, Any] = {
        "cpu_limit": None,
        "cpu_guarantee": None,
        "mem_limit": None,
        "mem_guarantee": None,
        "extra_resource_limits": {},
        "extra_resource_guarantees": {},
    }
    if cpu_limit is not None:
        out["cpu_limit"] = _cpu(cpu_limit)
        out["cpu_guarantee"] = _cpu(cpu_limit * cfg.request_fraction)
    if mem_limit_bytes is not None:
        out["mem_limit"] = int(mem_limit_bytes)
        out["mem_guarantee"] = int(mem_limit_bytes * cfg.request_fraction)
    if device_kind and device_count:
        name = cfg.resources[device_kind]
        out["extra_resource_limits"] = {name: str(device_count)}
        out["extra_resource_guarantees"] = {name: str(device_count)}
    return out


def placement(cfg: KubernetesBackendConfig, profile_slug: str | None) -> dict[str, Any]:
    """Node selector, tolerations and image of a spawn profile (its slug, then its kind)."""
    return {
        "node_selector": dict(image_for_profile(cfg.node_selectors, profile_slug, {})),
        "tolerations": list(image_for_profile(cfg.tolerations, profile_slug, [])),
        "image": image_for_profile(cfg.profile_images, profile_slug, cfg.image),
    }


_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def label_value(text: str) -> str:
    """`text` as a label value (63 characters of letters, digits, - _ ., alphanumeric at both
    ends), else a digest of it: a site's path has slashes, a username may end in '-'."""
    if _LABEL_VALUE.match(text):
        return text
    return "h-" + hashlib.sha256(text.encode()).hexdigest()[:20]


def labels(site_root: Path | str, username: str) -> dict[str, str]:
    """Labels that mark a pod as this site's, and whose (`k8s nodes` counts students' pods)."""
    return {LABEL_SITE: label_value(str(site_root)), LABEL_USER: label_value(username)}
