"""`mlworkshop k8s values`: Zero to JupyterHub (z2jh) Helm values made from mlworkshop.yaml, for a
hub that runs inside the cluster.

Pure: config in, a dict out. What the chart gets:
- hub: our hub image (`mlworkshop images build hub`: mlworkshop, JupyterHub 6.1 as we pin it,
  KubeSpawner 7.1) in place of the chart's (JupyterHub 5.5); mlworkshop.yaml as an extraFile and
  one extraConfig line that loads the same configure code the hub outside the cluster runs
  (hub/chart_config.py), so both ways of running the hub read one file;
- singleuser: the user image, uid/gid, per-user claims, CPU-only limits and the default URL. Our
  spawner sets the pod's real values per spawn profile; these are what the chart's own parts read
  (the pre-puller pulls singleuser.image, the profile images are extraImages);
- the chart's culler (cull.*: culler.timeout/every) instead of ours, the pre-puller, the user
  scheduler.
"""

from __future__ import annotations

from typing import Any

from ..config import MLWorkshopConfig
from ..config.loader import to_yaml
from ..hub.k8s_objects import DEFAULT_UID
from ..sizes import parse_bytes

HUB_IMAGE = "localhost/mlworkshop-hub:latest"
CHART_SITE = "/srv/jupyterhub/mlworkshop"  # on the hub's own claim (hub.db sqlite-pvc)
CHART_CONFIG_FILE = "/usr/local/etc/mlworkshop/mlworkshop.yaml"
EXTRA_CONFIG = (
    "# mlworkshop: the same configure code as `mlworkshop up` (mlworkshop.hub.chart_config)\n"
    "from mlworkshop.hub.chart_config import configure_in_chart\n"
    "configure_in_chart(c)\n"
)


class ValuesError(ValueError):
    """str() says which key to change for the chart."""


def split_image(reference: str) -> dict[str, str]:
    """'localhost/mlworkshop-user:cuda' -> {name: localhost/mlworkshop-user, tag: cuda}; a port
    in the registry part is not a tag, a digest stays on the name."""
    name, tag = reference, "latest"
    if "@" not in reference:
        head, _, last = reference.rpartition(":")
        if head and "/" not in last:
            name, tag = head, last
    else:
        name, tag = reference, ""
    return {"name": name, "tag": tag} if tag else {"name": name}


def byte_spec(n: int) -> str:
    """Bytes as the chart's config hands them to KubeSpawner's mem_limit/mem_guarantee: a string
    with a K/M/G suffix (powers of 1024). A bare number string is refused there ("not a valid
    memory specification", every spawn a 500), and a plain number may reach it as a float after
    helm's YAML round trip. Rounded up to whole KiB."""
    for suffix, size in (("G", 2**30), ("M", 2**20)):
        if n and n % size == 0:
            return f"{n // size}{suffix}"
    return f"{-(-n // 2**10)}K"


def _image(reference: str, policy: str) -> dict[str, Any]:
    return {**split_image(reference), "pullPolicy": policy}


def chart_values(cfg: MLWorkshopConfig, hub_image: str = HUB_IMAGE) -> dict[str, Any]:
    """The values to merge over the chart's defaults (helm does the merge)."""
    k = cfg.spawner.kubernetes
    if k.storage != "pvc" or k.shared.type == "hostPath":
        raise ValuesError(
            "The chart runs the hub in a pod, which cannot reach this machine's folders: set "
            "spawner.kubernetes.storage to pvc and spawner.kubernetes.shared.type to pvc or nfs "
            "(`mlworkshop config set spawner.kubernetes.storage pvc`), or run the hub outside the "
            "cluster (`mlworkshop up` with spawner.kubernetes.kubeconfig)."
        )
    uid, gid = k.uid_gid() or DEFAULT_UID
    cpu = cfg.accelerators.profiles.cpu
    mem = parse_bytes(cpu.mem_limit) if cpu.mem_limit else None
    singleuser: dict[str, Any] = {
        "image": _image(k.image, k.image_pull_policy),
        "uid": uid,
        "fsGid": gid,
        "cmd": None,  # the image's own command
        "defaultUrl": cfg.spawner.default_url,
        "startTimeout": k.start_timeout or cfg.spawner.start_timeout,
        "storage": {
            "type": "dynamic",
            "capacity": k.storage_capacity,
            "homeMountPath": f"{k.home.rstrip('/')}/work",
            "dynamic": {
                "storageClass": k.storage_class or None,
                "pvcNameTemplate": "mlw-work-{username}",
                "storageAccessModes": ["ReadWriteOnce"],
            },
        },
        "cpu": {
            "limit": cpu.cpu_limit,
            "guarantee": None if cpu.cpu_limit is None else cpu.cpu_limit * k.request_fraction,
        },
        "memory": {
            "limit": None if mem is None else byte_spec(mem),
            "guarantee": None if mem is None else byte_spec(int(mem * k.request_fraction)),
        },
        "nodeSelector": dict(k.node_selectors.get("cpu", {})),
        "extraTolerations": list(k.tolerations.get("cpu", [])),
        "extraEnv": dict(cfg.spawner.environment),
        "networkPolicy": {"enabled": True},
    }
    extra_images = {
        f"mlw-{key}".replace("_", "-"): split_image(ref)
        for key, ref in sorted(k.profile_images.items())
        if ref != k.image
    }
    usage_hub, usage_top = _usage_network(cfg)
    return {
        "hub": {
            "image": _image(hub_image, "IfNotPresent"),
            "baseUrl": cfg.hub.base_url,
            "config": {
                "JupyterHub": {
                    "authenticator_class": "mlworkshop.hub.auth.MLWorkshopAuthenticator",
                    "admin_access": False,
                }
            },
            "concurrentSpawnLimit": max(cfg.spawner.max_concurrent_starts, 64),
            "extraEnv": {
                "MLWORKSHOP_SITE": CHART_SITE,
                "MLWORKSHOP_CONFIG_FILE": CHART_CONFIG_FILE,
                # the hub image's own default (Dockerfile.hub: the docker backend) would win over
                # the file, as every MLWORKSHOP_ variable does
                "MLWORKSHOP_SPAWNER__BACKEND": "kubernetes",
                # where students reach the hub, for `mlworkshop doctor` in the hub's pod: the
                # chart's proxy (its proxy-public Service), not a proxy of the hub's own
                "MLWORKSHOP_HUB_URL": f"http://proxy-public{cfg.hub.base_url}",
            },
            "extraFiles": {
                "mlworkshop-yaml": {
                    "mountPath": CHART_CONFIG_FILE,
                    "stringData": to_yaml(cfg.model_dump(mode="json")) + "\n",
                    "mode": 0o440,
                }
            },
            "extraConfig": {"mlworkshop": EXTRA_CONFIG},
            "db": {"type": "sqlite-pvc"},
            # the usage service (dashboards, quotas) beside the hub, reached by the chart's proxy
            **usage_hub,
        },
        **usage_top,
        "singleuser": singleuser,
        "prePuller": {
            "hook": {"enabled": True},
            "continuous": {"enabled": True},
            "extraImages": extra_images,
        },
        "scheduling": {"userScheduler": {"enabled": True}},
        "cull": {
            "enabled": cfg.culler.enabled,
            "timeout": cfg.culler.timeout,
            "every": cfg.culler.every,
            "users": False,
            "adminUsers": True,
        },
    }


def _usage_network(cfg: MLWorkshopConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(hub values, top-level values) that let the chart's proxy reach the usage service beside
    the hub: its port on the hub's Service, open in the hub's NetworkPolicy ingress (only the
    hub's own port is, by default) and in the proxy's egress (which reaches the hub on 8081 only;
    a cluster that enforces NetworkPolicies would drop the usage pages otherwise)."""
    if not cfg.usage.enabled:
        return {}, {}
    from ..hub.chart_config import chart_usage_port

    port = chart_usage_port(cfg)
    proxy_pods = {"podSelector": {"matchLabels": {"hub.jupyter.org/network-access-hub": "true"}}}
    hub_pods = {"podSelector": {"matchLabels": {"component": "hub"}}}
    hub = {
        "service": {"extraPorts": [{"name": "usage", "port": port, "targetPort": port}]},
        "networkPolicy": {"ingress": [{"ports": [{"port": port}], "from": [proxy_pods]}]},
    }
    proxy = {"chp": {"networkPolicy": {"egress": [{"to": [hub_pods], "ports": [{"port": port}]}]}}}
    return hub, {"proxy": proxy}


def merged(defaults: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """What helm validates: the chart's defaults with `values` deep-merged over them (a null in
    `values` removes the key, as helm does)."""
    out = dict(defaults)
    for key, value in values.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out
