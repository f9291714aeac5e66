"""The kubernetes backend: a pod per user through KubeSpawner, inside the one lifecycle
(hub/lifecycle.py: queue, devices, workspace, backend, usage).

`apply_kube_spawner(c, cfg, site)` maps `spawner.kubernetes` onto traitlets (pure: it only sets
values). `KubeWorkspaceSpawner` adds to KubeSpawner only what mlworkshop needs; the pod's pieces
are built by the pure functions of hub/k8s_objects.py:

- the workspace (work/ on hostPath or the user's claim, content read-only, the user's own
  submissions/ writable, admins all of them read-only);
- the user's stable uid (their system account's, as on the local backend) and never root;
- the spawn profile's CPU and memory as limits (a fraction as requests) and its devices as the
  extended resource of their kind (`nvidia.com/gpu: 1`), node selector, tolerations and image;
- devices: on Kubernetes the device plugin hands them out, so nothing is booked in our allocator;
  the profiles a user may pick still come from their limit (accelerators.max_per_user,
  group_limits) and their usage quota, and the sizes on offer from what the nodes advertise;
- usage: the session holds the pod (namespace/name); its samples come from the kubelet's
  /stats/summary (usage/k8s_stats.py); device-hours from the pod's extended-resource request.
"""

from __future__ import annotations

import asyncio
import grp
import os
import time
from pathlib import Path

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException
from kubespawner import KubeSpawner
from traitlets import Dict, observe, validate
from traitlets.config import Config

from ..accelerators import Device, Grant, profiles_for
from ..accelerators.inventory import Inventory
from ..config import MLWorkshopConfig
from ..config.kubernetes import KubernetesBackendConfig
from ..kubeapi import api_message
from ..site import Site
from ..sizes import parse_bytes
from . import k8s_objects
from .accelerators import HubAccelerators, Who
from .lifecycle import WorkshopSpawner, _checked


def apply_kube_spawner(c: Config, cfg: MLWorkshopConfig, site: Site) -> None:
    """Map spawner.kubernetes onto KubeSpawner's traitlets; pods reach the hub at hub_connect_url."""
    k = cfg.spawner.kubernetes
    c.JupyterHub.spawner_class = "mlworkshop.hub.kube_backend.KubeWorkspaceSpawner"
    s = c.KubeWorkspaceSpawner
    s.kubernetes = k.model_dump(mode="json")
    s.namespace = k.namespace
    s.image = k.image
    s.image_pull_policy = k.image_pull_policy
    s.cmd = []  # the image's own command (the user images run mlworkshop's single-user server)
    s.working_dir = k.home
    s.default_url = cfg.spawner.default_url
    s.start_timeout = k.start_timeout or cfg.spawner.start_timeout
    s.http_timeout = cfg.spawner.http_timeout
    s.environment = {"HOME": k.home, **cfg.spawner.environment}
    s.pod_name_template = "mlw-{user_server}"
    s.pvc_name_template = "mlw-work-{username}"
    s.storage_pvc_ensure = k.storage == "pvc"
    s.storage_class = k.storage_class
    s.storage_capacity = k.storage_capacity
    s.storage_access_modes = ["ReadWriteOnce"]
    s.delete_pvc = False  # a removed user's files stay, as on every backend
    s.events_enabled = True  # the spawn page shows the pod's events (pulling, scheduling...)
    if k.hub_connect_url:  # hub outside the cluster: its API listens where pods reach it
        s.hub_connect_url = k.hub_connect_url
        c.JupyterHub.hub_ip = "0.0.0.0"
        c.JupyterHub.hub_connect_ip = "127.0.0.1"
    for key, value in k.extra.items():  # KubeSpawner options we do not model, as they are
        s[key] = value


class KubeAccelerators(HubAccelerators):
    """Profiles on Kubernetes: what the user's limit allows, up to the most devices of a kind one
    node advertises (a pod runs on one node); nothing booked (the device plugin allocates)."""

    def __init__(self, base: HubAccelerators, devices: list[Device]):
        self.cfg = base.cfg.model_copy(update={"mode": "exclusive"})
        self.inventory = Inventory(devices, ["the cluster's nodes (allocatable)"])
        self.allocator = None
        self.stale = None

    def profiles(self, who: Who, only_free: bool) -> list:
        return profiles_for(
            who.user, list(who.groups), who.admin, self.cfg, self.devices, None, who.server, False
        )


class KubeWorkspaceSpawner(WorkshopSpawner, KubeSpawner):
    """A pod per user with mlworkshop's workspace, uid, limits and extended resources."""

    backend_name = "kubernetes"

    kubernetes = Dict(
        help="The spawner.kubernetes section of mlworkshop.yaml, as a dict; checked like the file "
        "(mlworkshop.config.kubernetes)."
    ).tag(config=True)

    @validate("kubernetes")
    def _valid_kubernetes(self, proposal):
        return _checked("kubernetes", KubernetesBackendConfig, proposal["value"])

    @observe("kubernetes")
    def _kubeconfig(self, change):
        # KubeSpawner loads its client's configuration once per process, right after the traits
        # are set, from kubernetes_asyncio's default kubeconfig: $KUBECONFIG as it was when that
        # module was imported (a module constant), so the constant is what has to name ours
        path = (change["new"] or {}).get("kubeconfig")
        if path:
            from kubernetes_asyncio.config import kube_config

            os.environ["KUBECONFIG"] = path
            kube_config.KUBE_CONFIG_DEFAULT_LOCATION = path

    @property
    def kube(self) -> KubernetesBackendConfig:
        return KubernetesBackendConfig.model_validate(self.kubernetes or {})

    # --- devices: the cluster's, not this machine's -----------------------------------------------
    _node_devices: dict[str, int] = {}  # per process: most devices of each kind on one node
    _node_devices_at: float = 0.0

    @property
    def hub_accelerators(self) -> HubAccelerators:
        base = super().hub_accelerators
        if base.cfg.inventory:  # written by hand: the largest node's devices
            devices = list(base.devices)
        else:
            devices = [
                Device(kind, i)
                for kind, n in sorted(type(self)._node_devices.items())
                for i in range(n)
            ]
        return KubeAccelerators(base, devices)

    async def refresh_node_devices(self) -> None:
        """What the schedulable nodes advertise, looked up at most once a minute."""
        cls = type(self)
        if time.monotonic() - cls._node_devices_at < 60 and cls._node_devices_at:
            return
        try:
            nodes = await self.api.list_node(_request_timeout=10)
        except Exception as exc:  # noqa: BLE001 - the form still offers CPU-only servers
            self.log.warning(
                "Could not list the cluster's nodes for device profiles (`mlworkshop k8s "
                "doctor` says why; a hub with only the chart's Role needs `mlworkshop k8s "
                "rbac`): %s",
                api_message(exc),
            )
            cls._node_devices_at = time.monotonic()  # asked again in a minute, not every form
            return
        most: dict[str, int] = {}
        for node in nodes.items:
            if node.spec.unschedulable:
                continue
            allocatable = node.status.allocatable or {}
            for kind, resource in self.kube.resources.items():
                try:
                    n = int(allocatable.get(resource, "0"))
                except ValueError:
                    n = 0
                most[kind] = max(most.get(kind, 0), n)
        cls._node_devices = {k: n for k, n in most.items() if n > 0}
        cls._node_devices_at = time.monotonic()

    async def get_options_form(self):
        await self.refresh_node_devices()
        return await super().get_options_form()

    async def check_user_options(self, user_options):
        await self.refresh_node_devices()
        return await super().check_user_options(user_options)

    async def grant_devices(self) -> Grant:
        """The profile validated against the user's limit; its devices are requested from the
        cluster (the extended resource), and counted for usage as held by this server."""
        self._start_future = None  # progress() follows this start's pod, not the last one's
        await self.refresh_node_devices()
        granted = await super().grant_devices()
        profile = granted.profile
        if profile.kind and profile.count:
            # device-hours are counted from the pod's request; the device plugin picks which
            granted = Grant(
                profile, [Device(profile.kind, i) for i in range(profile.count)], {}, [], True
            )
            self.accelerator_grant = granted
        return granted

    async def progress(self):
        """The place in line (the shared lifecycle's), then the pod's own events (scheduled,
        pulling the image, no node with a free GPU ...), as KubeSpawner reports them."""
        async for event in WorkshopSpawner.progress(self):
            yield event
        async for event in KubeSpawner.progress(self):
            yield event

    async def load_user_options(self):
        """The profile is ours (accelerators' spawn profiles, applied in start_backend), not
        KubeSpawner's profile_list, which would refuse a slug it does not list."""

    # --- the pod ---------------------------------------------------------------------------------
    @property
    def container_id(self) -> str:
        """What a usage session records: the pod, as namespace/name (the usage service asks the
        kubelet of its node for its CPU and memory)."""
        return f"{self.namespace}/{self.pod_name}" if self.pod_name else ""

    def _account_ids(self) -> tuple[int, int] | None:
        account = self.workspace.account if self.workspace else None
        return (account.uid, account.gid) if account else None

    def _admin_gid(self) -> int | None:
        try:
            return grp.getgrnam(self.admin_group).gr_gid
        except KeyError:
            return None

    async def start_backend(self, granted: Grant):
        k = self.kube
        profile = granted.profile
        try:
            uid, gid = k8s_objects.pod_ids(k, self._account_ids())
        except ValueError as exc:
            raise RuntimeError(str(exc)) from None
        workspace = self.workspace
        site = Path(self.site_root)
        if k.storage == "hostPath" and workspace.account is None and os.geteuid() == 0:
            for path in (workspace.home / "work", site / "submissions" / self.user.name):
                os.chown(path, uid, gid)
            os.chmod(workspace.home / "work", 0o700)
        is_admin = bool(self.user.admin)
        admin_gid = self._admin_gid()
        extra_gids = [admin_gid] if is_admin and admin_gid is not None else []
        for key, value in k8s_objects.security(uid, gid, extra_gids).items():
            setattr(self, key, value)
        volumes, mounts = k8s_objects.workspace_volumes(
            k,
            username=self.user.name,
            is_admin=is_admin,
            site_root=site,
            content_dir=Path(self.content_dir),
            work_dir=workspace.home / "work",
            pvc_name=self.pvc_name,
        )
        self.volumes, self.volume_mounts = volumes, mounts
        place = k8s_objects.placement(k, profile.slug)
        self.image = place["image"]
        self.node_selector = place["node_selector"]
        self.tolerations = place["tolerations"]
        self.init_containers = k8s_objects.submissions_init_container(
            k, self.user.name, uid, admin_gid if admin_gid is not None else gid, self.image
        )
        mem = None if profile.mem_limit is None else parse_bytes(profile.mem_limit)
        for key, value in k8s_objects.resources(
            k, profile.cpu_limit, mem, profile.kind, profile.count
        ).items():
            setattr(self, key, value)
        self.extra_labels = {
            **self.extra_labels,
            **k8s_objects.labels(self.site_root, self.user.name),
        }
        self.log.info(
            "%s's pod %s/%s: profile %s, uid %s, image %s",
            self.user.name,
            self.namespace,
            self.pod_name,
            profile.slug,
            uid,
            self.image,
        )
        # KubeSpawner waits start_timeout from here, JupyterHub from the request: end first, so the
        # student reads why (the pod's events) instead of JupyterHub's bare timeout
        asked = (self._step_times or {}).get("asked", time.monotonic())
        budget = max(5.0, self.start_timeout - (time.monotonic() - asked) - 3)
        try:
            return await asyncio.wait_for(self.engine_start(), budget)
        except TimeoutError:
            raise RuntimeError(await self._why_not_started()) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise RuntimeError(self._unreachable(exc)) from None
        except ApiException as exc:
            message = (
                f"The cluster refused {self.user.name}'s pod {self.namespace}/{self.pod_name}: "
                f"{api_message(exc)}. Run `mlworkshop k8s doctor` (namespace, permissions, "
                "storage class)."
            )
            self.log.error("%s", message)
            raise RuntimeError(message) from None

    def _unreachable(self, exc: BaseException) -> str:
        message = (
            f"The Kubernetes API is not reachable ({exc}), so {self.user.name}'s pod could not be "
            "managed. Check that the cluster runs and spawner.kubernetes.kubeconfig "
            f"({self.kube.kubeconfig or 'in-cluster / $KUBECONFIG'}); `mlworkshop k8s doctor` says "
            "more."
        )
        self.log.error("%s", message)
        return message

    async def stop_backend(self, now: bool = False) -> None:
        try:
            await self.engine_stop(now)
        except (aiohttp.ClientError, OSError) as exc:
            raise RuntimeError(self._unreachable(exc)) from None

    async def _why_not_started(self) -> str:
        """The pod's last events, when it did not come up in time (unschedulable: no node has the
        GPU; image missing on an offline node ...)."""
        reasons = []
        try:
            events = await self.api.list_namespaced_event(
                self.namespace, field_selector=f"involvedObject.name={self.pod_name}"
            )
            reasons = [f"{e.reason}: {e.message}" for e in events.items[-3:] if e.message]
        except Exception:  # noqa: BLE001 - the message below still says where to look
            pass
        return (
            f"{self.user.name}'s pod {self.namespace}/{self.pod_name} did not start within "
            f"{self.start_timeout} s (image {self.image}). "
            + (" ".join(reasons) if reasons else "")
            + f" See `kubectl -n {self.namespace} describe pod {self.pod_name}` and "
            "`mlworkshop k8s doctor`."
        )

    def read_usage(self, dead: bool = False):
        """The pod's CPU and memory from its node's kubelet (nothing once it is gone)."""
        if dead or not self.pod_name:
            return None
        from ..usage.k8s_stats import pod_sample

        return pod_sample(self.kube.kubeconfig, self.namespace, self.pod_name)


__all__ = ["KubeAccelerators", "KubeWorkspaceSpawner", "apply_kube_spawner"]
