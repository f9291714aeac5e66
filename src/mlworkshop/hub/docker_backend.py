"""The docker backend: a container per user through DockerSpawner (Docker, or podman's
Docker-compatible socket).

`apply_docker_spawner(c, cfg, site)` maps `spawner.docker` onto traitlets (pure: it only sets
values). `DockerWorkspaceSpawner` is a backend of the shared lifecycle (hub/lifecycle.py: queue,
devices, workspace, usage) and adds to DockerSpawner only what mlworkshop needs:

- the workspace the lifecycle prepared, mounted into the container:
      <site>/users/<name>/work        -> <home>/work         rw (private: 0700, the user's uid)
      <content>/{lessons,datasets,models} -> <home>/<kind>   ro
      <site>/submissions/<name>       -> <home>/submissions  rw (admins: all of <site>/submissions, ro)
- the container runs as the user's own system account (uid:gid) when the hub is root, else as
  the hub's own uid: never as root, and files on the mounts belong to the right account;
- accelerator devices (NVIDIA device requests, Ascend device files + driver mounts) from
  `accelerator_devices()`;
- labels that mark a container as this hub's, so a container of the same name that is not ours is
  reported as a clash instead of being removed;
- errors an admin can act on (engine not reachable, image missing, name clash, no space left), and
  no container left behind when a start fails;
- on the host's network (network host), a port from hub/server_port.py and a listener believed
  only when the student's own account owns it (else the start fails and the container goes).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import docker.errors
from dockerspawner import DockerSpawner
from traitlets import Bool, Dict, List, Unicode
from traitlets.config import Config

from ..config import MLWorkshopConfig
from ..config.docker import image_for_profile
from ..site import CONTENT_KINDS, Site
from ..sizes import parse_bytes
from . import server_port
from .lifecycle import WorkshopSpawner
from .usage_hooks import container_reading

LABEL_SITE = "org.mlworkshop.site"
LABEL_USER = "org.mlworkshop.user"
PODMAN_GATEWAY = "10.88.0.1"  # podman's default bridge
DOCKER_GATEWAY = "172.17.0.1"  # Docker's default bridge


def apply_docker_spawner(c: Config, cfg: MLWorkshopConfig, site: Site) -> None:
    """Map spawner.docker onto DockerSpawner's traitlets; the hub's API listens where containers reach it."""
    d = cfg.spawner.docker
    c.JupyterHub.spawner_class = "mlworkshop.hub.docker_backend.DockerWorkspaceSpawner"
    s = c.DockerWorkspaceSpawner
    s.client_kwargs = {"base_url": d.url}
    s.image = d.image_for(None)
    s.allowed_images = {i.name: i.image for i in d.images}
    s.profile_images = {k: d.image_for(v) for k, v in d.profile_images.items()}
    s.pull_policy = d.pull_policy
    s.remove = d.remove
    s.name_template = d.name_template
    s.container_home = d.home
    s.notebook_dir = d.home
    s.run_as = d.user
    if d.user != "auto":
        # one fixed uid for every container: no per-user system accounts (a hub in a container
        # would lose them on restart); each container still mounts only its own user's folders
        s.isolate_users = False
    s.group_add = list(d.group_add)
    s.host_site_dir = d.host_site_dir
    s.nvidia_devices = d.nvidia_devices
    s.default_url = cfg.spawner.default_url
    s.start_timeout = cfg.spawner.start_timeout
    s.http_timeout = cfg.spawner.http_timeout
    s.environment = {**cfg.spawner.environment, **d.environment}
    if d.cpu_limit is not None:
        s.cpu_limit = d.cpu_limit
    if d.mem_limit is not None:
        s.mem_limit = d.mem_limit

    if d.network == "host":
        # servers listen on the host's loopback, a free port each; the hub stays on loopback
        s.network_name = "host"
        s.host_network = True
        s.use_internal_ip = True
        s.ip = "127.0.0.1"
        s.hub_connect_url = f"http://127.0.0.1:{cfg.hub.api_port}"
        s.auto_hub_connect_url = False
    else:
        s.network_name = d.network
        s.host_network = False
        # containers reach the hub through the network's gateway (or a name on a user network):
        # the hub binds all addresses, the proxy still calls it on loopback
        c.JupyterHub.hub_ip = d.hub_ip
        c.JupyterHub.hub_connect_ip = "127.0.0.1"
        if d.hub_connect_url == "auto":
            s.auto_hub_connect_url = True
        else:
            s.auto_hub_connect_url = False
            s.hub_connect_url = d.hub_connect_url
    for key, value in d.extra.items():  # DockerSpawner options we do not model, as they are
        s[key] = value


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: dicts merge, lists concatenate (devices from us + devices from `extra`),
    anything else from `extra` wins."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(out.get(key), Mapping) and isinstance(value, Mapping):
            out[key] = _merge(out[key], value)
        elif isinstance(out.get(key), list) and isinstance(value, list):
            out[key] = out[key] + [v for v in value if v not in out[key]]
        else:
            out[key] = value
    return out


def _devices_from_dicts(items: Sequence[Mapping[str, Any]]) -> list:
    from ..accelerators.inventory import Device

    return [Device(kind=str(i["kind"]), index=int(i["index"]), name=i.get("name")) for i in items]


def accelerator_host_config(devices: Sequence, nvidia_cdi: bool = False) -> dict[str, Any]:
    """Host-config pieces for these devices: NVIDIA as device requests (or CDI names for podman),
    Ascend as device files, driver mounts and ASCEND_VISIBLE_DEVICES. Pure."""
    from ..accelerators.exposure import ascend_devices_and_mounts, docker_device_requests

    host: dict[str, Any] = {}
    env: dict[str, str] = {}
    volumes: dict[str, dict[str, str]] = {}
    requests = docker_device_requests(devices)
    if requests and nvidia_cdi:
        host["devices"] = [f"nvidia.com/gpu={i}" for r in requests for i in r["DeviceIDs"]]
    elif requests:
        host["device_requests"] = requests
    ascend = ascend_devices_and_mounts(devices)
    if ascend["devices"]:
        host["devices"] = host.get("devices", []) + list(ascend["devices"])
        volumes.update(ascend["volumes"])
        env.update(ascend["environment"])
    return {"host_config": host, "environment": env, "volumes": volumes}


def _stricter(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


class ContainerStartError(RuntimeError):
    """str() is what the admin reads (spawn page and hub log): what failed and what to do."""


HOST_NETWORK_NEEDS_OWN_ACCOUNTS = (
    "spawner.docker.network is host, but the containers would not each run as their student's "
    "own account: on the host's network any student can listen on the port meant for a "
    "classmate's server, and only the listener's account tells the hub whose it is. Fix: "
    "`mlworkshop config set spawner.docker.network bridge` (the default), or run the hub as "
    "root with spawner.docker.user auto."
)


def explain_engine_error(exc: BaseException, *, url: str, image: str, container: str) -> str | None:
    """An admin-readable message for a failure talking to the engine, or None if not recognised."""
    import docker.errors
    import requests.exceptions

    text = str(exc)
    low = text.lower()
    if "no space left" in low:
        return (
            f"The container engine ran out of disk space while starting {container} ({text.strip()[:300]}). "
            "Free space on the engine's storage: remove unused images and containers "
            "(`podman system prune` or `docker system prune`), or move its storage to a bigger disk."
        )
    if isinstance(
        exc, (requests.exceptions.ConnectionError, FileNotFoundError, ConnectionError)
    ) or (
        isinstance(exc, docker.errors.DockerException)
        and not isinstance(exc, docker.errors.APIError)
        and ("connection" in low or "no such file" in low or "refused" in low)
    ):
        return (
            f"The container engine at {url} is not reachable ({text.strip()[:200]}). "
            "Start it (Docker: `systemctl start docker`; podman: `bash scripts/podman-setup.sh` or "
            "`systemctl start podman.socket`) or set spawner.docker.url to its socket."
        )
    if (
        isinstance(exc, docker.errors.ImageNotFound)
        or (isinstance(exc, docker.errors.APIError) and exc.status_code == 404 and "image" in low)
        or (
            isinstance(exc, docker.errors.APIError)
            and (
                "pull access denied" in low
                or "manifest unknown" in low
                or "initializing source" in low
            )
        )
    ):
        return (
            f"The image {image} is not on the container host and could not be pulled. "
            f"Build it with `mlworkshop images build`, or load the offline copy with "
            f"`mlworkshop images load` (images/*.tar.gz); or list another image in spawner.docker.images."
        )
    if isinstance(exc, docker.errors.APIError) and exc.status_code == 409:
        return (
            f"A container named {container} already exists ({text.strip()[:200]}). Remove it "
            f"(`docker rm -f {container}` / `podman rm -f {container}`) or change spawner.docker.name_template."
        )
    return None


class DockerWorkspaceSpawner(WorkshopSpawner, DockerSpawner):
    """A container per user with mlworkshop's workspace, limits and devices."""

    backend_name = "docker"

    container_home = Unicode("/home/jovyan", help="The user's folder inside the container.").tag(
        config=True
    )
    run_as = Unicode(
        "auto", help="uid:gid to run as; auto: the user's account (root hub) or the hub's uid."
    ).tag(config=True)
    group_add = List(
        Unicode(), default_value=["100"], help="Extra numeric groups in the container."
    ).tag(config=True)
    host_site_dir = Unicode(
        "", help="The site folder's path on the engine's host, if not the same."
    ).tag(config=True)
    profile_images = Dict(help="Profile slug or kind -> image reference.").tag(config=True)
    auto_hub_connect_url = Bool(
        True, help="Find the hub's address from the network's gateway."
    ).tag(config=True)
    host_network = Bool(False, help="Containers use the host's network (a free port each).").tag(
        config=True
    )
    nvidia_devices = Unicode(
        "auto", help="device_requests, cdi (nvidia.com/gpu=N, podman) or auto (cdi on podman)."
    ).tag(config=True)
    wait_until_ready = Bool(
        True,
        help="Return from start() once the server answers HTTP (else JupyterHub's back-off finds it).",
    ).tag(config=True)
    static_devices = List(
        Dict(),
        help="Devices every server gets, as [{kind, index}] (tests; hosts without the allocator).",
    ).tag(config=True)

    # --- hooks --------------------------------------------------------------------
    def accelerator_devices(self) -> list:
        """Devices this server may use: what the lifecycle granted it, else `static_devices`."""
        granted = self.accelerator_grant
        if granted is not None:
            return list(granted.devices)
        return _devices_from_dicts(self.static_devices)

    # --- pieces -------------------------------------------------------------------
    _base_limits: tuple | None = None

    def apply_limits(self, profile) -> None:
        """spawner.docker's cpu/mem limits and the chosen profile's: the stricter of the two."""
        if self._base_limits is None:
            self._base_limits = (self.cpu_limit, self.mem_limit)
        cpu, mem = self._base_limits
        if profile is not None:
            cpu = _stricter(cpu, profile.cpu_limit)
            mem = _stricter(
                mem, None if profile.mem_limit is None else parse_bytes(profile.mem_limit)
            )
        self.cpu_limit, self.mem_limit = cpu, mem

    def host_path(self, path: Path) -> str:
        """A path as the engine's host sees it (the hub may run in a container)."""
        path = Path(path)
        if self.host_site_dir:
            try:
                return str(Path(self.host_site_dir) / path.relative_to(self.site_root))
            except ValueError:
                pass
        return str(path)

    def user_ids(self, workspace) -> tuple[int, int]:
        if self.run_as != "auto":
            uid, _, gid = self.run_as.partition(":")
            return int(uid), int(gid or uid)
        if workspace.account is not None:
            return workspace.account.uid, workspace.account.gid
        if os.geteuid() != 0:
            return os.getuid(), os.getgid()
        return 1000, 100  # a root hub without per-user accounts: the image's own user

    def workspace_volumes(self, workspace, is_admin: bool) -> dict[str, dict[str, str]]:
        site = Path(self.site_root)
        home = self.container_home.rstrip("/")
        volumes = {self.host_path(workspace.home / "work"): {"bind": f"{home}/work", "mode": "rw"}}
        for kind in CONTENT_KINDS:
            volumes[self.host_path(Path(self.content_dir) / kind)] = {
                "bind": f"{home}/{kind}",
                "mode": "ro",
            }
        if is_admin:
            volumes[self.host_path(site / "submissions")] = {
                "bind": f"{home}/submissions",
                "mode": "ro",
            }
        else:
            volumes[self.host_path(site / "submissions" / self.user.name)] = {
                "bind": f"{home}/submissions",
                "mode": "rw",
            }
        return volumes

    def pick_image(self) -> str:
        """user_options image (a name from spawner.docker.images), else the profile's, else the default."""
        options = self.user_options or {}
        allowed = self._get_allowed_images() or {}
        name = options.get("image")
        if name:
            if name not in allowed:
                raise ContainerStartError(
                    f"Image {name!r} is not one of the configured images ({', '.join(allowed) or 'none'})."
                )
            return allowed[name]
        return image_for_profile(self.profile_images, options.get("profile"), self.image)

    async def resolve_hub_connect_url(self) -> None:
        if not self.auto_hub_connect_url:
            return
        port = urlparse(self.hub.api_url).port or 8081
        gateway = None
        try:
            network = await self.docker(
                "inspect_network",
                "podman"
                if await self._is_podman() and self.network_name == "bridge"
                else self.network_name,
            )
            for entry in (network.get("IPAM") or {}).get("Config") or []:
                if entry.get("Gateway") and ":" not in entry["Gateway"]:
                    gateway = entry["Gateway"]
                    break
        except Exception as exc:  # noqa: BLE001 - fall back to the engines' defaults
            self.log.debug("network %s: %s", self.network_name, exc)
        if gateway is None:
            gateway = PODMAN_GATEWAY if await self._is_podman() else DOCKER_GATEWAY
        self.hub_connect_url = f"http://{gateway}:{port}"

    _engine_is_podman: bool | None = None  # one engine per hub: asked once

    async def _is_podman(self) -> bool:
        cls = type(self)
        if cls._engine_is_podman is None:
            version = await self.docker("version")
            names = " ".join(c.get("Name", "") for c in version.get("Components") or [])
            cls._engine_is_podman = "podman" in names.lower()
        return cls._engine_is_podman

    def labels(self) -> dict[str, str]:
        return {LABEL_SITE: str(self.site_root), LABEL_USER: self.user.name}

    # --- DockerSpawner overrides --------------------------------------------------------
    def get_env(self):
        env = super().get_env()
        env.update(self._device_env)
        env.setdefault("HOME", self.container_home)
        env["JUPYTERHUB_USER"] = self.user.name
        return env

    _device_env: dict[str, str] = {}
    _host_extra: dict[str, Any] = {}
    _create_extra: dict[str, Any] = {}

    async def _configured(self, value):
        value = self._eval_if_callable(value)
        if hasattr(value, "__await__"):
            value = await value
        return dict(value or {})

    async def create_object(self):
        configured_create, configured_host = self.extra_create_kwargs, self.extra_host_config
        self.extra_create_kwargs = _merge(
            self._create_extra, await self._configured(configured_create)
        )
        self.extra_host_config = _merge(self._host_extra, await self._configured(configured_host))
        try:
            return await super().create_object()
        finally:
            self.extra_create_kwargs, self.extra_host_config = configured_create, configured_host

    async def get_ip_and_port(self):
        if self.host_network:
            return "127.0.0.1", self.port
        return await super().get_ip_and_port()

    async def stop_backend(self, now=False):
        try:
            await self.engine_stop(now)
        except docker.errors.NotFound:
            self.clear_state()

    def read_usage(self, dead: bool = False):
        """The container's CPU and memory, from the engine's stats (nothing once it is gone)."""
        if dead or not self.container_id:
            return None
        return container_reading(
            self.client_kwargs.get("base_url"), self.name or "", self.container_id
        )

    async def start_backend(self, granted):
        url = self.client_kwargs.get("base_url", "")
        try:
            await self.prepare_spec(granted)
            await self.check_name_is_ours()
            await self.resolve_hub_connect_url()
            # DockerSpawner resolves user_options["image"] again, through the same allowed_images
            # pick_image() checked: the same reference
            ip, port = await self.engine_start()
            if self.wait_until_ready:
                await self.wait_until_answering(ip, port)
            return ip, port
        except ContainerStartError:
            await self.remove_failed()
            raise
        except Exception as exc:  # noqa: BLE001 - turned into a message the admin can act on
            await self.remove_failed()
            message = explain_engine_error(
                exc, url=url, image=self.image, container=self.object_name
            )
            if message is None:
                raise
            self.log.error("Starting %s's container failed: %s", self.user.name, message)
            raise ContainerStartError(message) from None
        finally:
            if self._held_port is not None:  # only the port this start picked
                server_port.release(self._held_port)
                self._held_port = None

    async def prepare_spec(self, granted) -> None:
        """Everything the container spec needs (the workspace is on disk): image, uid, mounts, devices."""
        self.apply_limits(getattr(granted, "profile", None))
        workspace = self.workspace
        is_admin = bool(self.user.admin)
        uid, gid = self.user_ids(workspace)
        if uid == 0:
            raise ContainerStartError(
                "User servers must not run as root: set spawner.docker.user to a uid:gid."
            )
        if workspace.account is None and os.geteuid() == 0:
            for path in (
                workspace.home / "work",
                Path(self.site_root) / "submissions" / self.user.name,
            ):
                os.chown(path, uid, gid)
            os.chmod(workspace.home / "work", 0o700)
        groups = list(self.group_add)
        if is_admin and workspace.account is not None:
            import grp

            try:
                groups.append(str(grp.getgrnam(self.admin_group).gr_gid))  # reads all submissions
            except KeyError:
                pass

        self.image = self.pick_image()
        devices = self.accelerator_devices()
        cdi = self.nvidia_devices == "cdi" or (
            self.nvidia_devices == "auto"
            and any(d.kind == "nvidia" for d in devices)
            and await self._is_podman()
        )
        acc = accelerator_host_config(devices, cdi)
        self._device_env = acc["environment"]
        self.volumes = {**self.workspace_volumes(workspace, is_admin), **acc["volumes"]}
        self.read_only_volumes = {}
        self._create_extra = {
            "user": f"{uid}:{gid}",
            "labels": self.labels(),
            "working_dir": self.container_home,
        }
        # removed by stop() (remove: true) or after a failed start, not by the engine the moment
        # it exits: a server that dies while starting keeps its output for the error message
        host: dict[str, Any] = {"group_add": groups, "auto_remove": False, **acc["host_config"]}
        if self.host_network:
            if self.run_as != "auto" or workspace.account is None:
                raise ContainerStartError(HOST_NETWORK_NEEDS_OWN_ACCOUNTS)
            host["network_mode"] = "host"
            self._uid = uid
            self.port = self._held_port = server_port.pick()  # released at start_backend's end
        self._host_extra = host
        if devices:
            self.log.info(
                "%s's container gets %s", self.user.name, ", ".join(d.label for d in devices)
            )

    ready_poll_interval = 0.05  # seconds between two looks at a starting server
    _uid = 0  # the account the container runs as (prepare_spec)
    _held_port: int | None = None  # picked by this start, held from other starts until it ends

    async def _listener_is_ours(self, writer: asyncio.StreamWriter, port: int) -> bool:
        """On the host's network: whether what accepted the hub's connection on `port` is this
        student's container (hub/server_port.py: the port was free when picked, but any process
        on the host, such as another student's kernel, may bind it first). True when the
        listener's owner is the account the container's processes run as on the host; False
        when the kernel could not tell yet; ContainerStartError (nothing sent) when it is anyone
        else's."""
        owner = server_port.listener_uid(writer.get_extra_info("socket"))
        if owner is None:
            return False
        expected = await self._container_host_uid()
        if owner == expected:
            return True
        self.log.warning(
            "Port %s was taken by uid %s before %s's container (uid %s) could listen there",
            port,
            owner,
            self.user.name,
            expected,
        )
        raise ContainerStartError(
            f"Port {port} on the host's network was taken by uid {owner} before "
            f"{self.user.name}'s server could listen there; the container was removed so that "
            "nobody is sent to it. Start the server again (another port is picked). If it keeps "
            f"happening, find what uid {owner} runs (`ss -ltnp 'sport = :{port}'`)."
        )

    async def _container_host_uid(self) -> int:
        """The uid the container's first process has on the host: the account's uid, or where
        the engine maps uids (Docker's userns-remap) the one it maps it to."""
        try:
            pid = (await self.docker("inspect_container", self.object_name))["State"]["Pid"]
        except Exception:  # noqa: BLE001 - gone: the caller's next look finds it exited
            return self._uid
        import psutil

        try:
            return psutil.Process(pid).uids().effective if pid else self._uid
        except psutil.Error:  # gone meanwhile
            return self._uid

    async def wait_until_answering(self, ip: str, port: int) -> None:
        """Return as soon as the server in the container answers HTTP, so the hub's first check
        succeeds (JupyterHub polls with back-off up to 5 s: ~4 s lost per start otherwise). A TCP
        connect alone is not enough: Docker's userland proxy accepts on a published port before
        the server listens. A container that exits meanwhile is reported with its last output."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        next_poll = loop.time() + 1.0
        request = f"GET {self.server.base_url if self.server else '/'}api HTTP/1.0\r\nHost: {ip}\r\n\r\n".encode()
        while loop.time() < deadline:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 2)
                try:
                    if self.host_network and not await self._listener_is_ours(writer, port):
                        line = b""  # not known yet whose it is: ask it nothing
                    else:
                        writer.write(request)
                        await writer.drain()
                        line = await asyncio.wait_for(reader.readline(), 5)
                finally:
                    writer.close()
                if line.startswith(b"HTTP/"):
                    return
            except (TimeoutError, OSError):
                pass
            if loop.time() >= next_poll:
                next_poll = loop.time() + 1.0
                if await self.poll() is not None:
                    logs = ""
                    try:
                        raw = await self.docker("logs", self.object_name, tail=15)
                        logs = raw.decode(errors="replace").strip()
                    except Exception:  # noqa: BLE001 - gone already
                        pass
                    raise ContainerStartError(
                        f"{self.user.name}'s container {self.object_name} exited while starting "
                        f"(image {self.image}). Its last output:\n{logs or '(none)'}"
                    )
            await asyncio.sleep(self.ready_poll_interval)
        raise ContainerStartError(
            f"{self.user.name}'s server in {self.object_name} did not answer within {self.start_timeout} s "
            f"(image {self.image}); see `docker logs {self.object_name}`."
        )

    async def check_name_is_ours(self) -> None:
        """A container with our name but not our labels is someone else's: never remove it."""
        try:
            existing = await self.docker("inspect_container", self.object_name)
        except docker.errors.NotFound:
            return
        labels = (existing.get("Config") or {}).get("Labels") or {}
        if (
            labels.get(LABEL_SITE) != str(self.site_root)
            or labels.get(LABEL_USER) != self.user.name
        ):
            owner = labels.get(LABEL_SITE) or "not made by mlworkshop"
            raise ContainerStartError(
                f"A container named {self.object_name} already exists and is not this hub's ({owner}). "
                f"Remove it (`docker rm -f {self.object_name}` / `podman rm -f {self.object_name}`) or set "
                "spawner.docker.name_template to a pattern no other hub uses."
            )

    async def remove_failed(self) -> None:
        """After a failed start: remove the container we made (never one that is not ours)."""
        try:
            existing = await self.docker("inspect_container", self.object_name)
        except Exception:  # noqa: BLE001 - nothing there, or the engine is gone
            return
        labels = (existing.get("Config") or {}).get("Labels") or {}
        if (
            labels.get(LABEL_SITE) != str(self.site_root)
            or labels.get(LABEL_USER) != self.user.name
        ):
            return
        try:
            await self.docker("remove_container", existing["Id"], v=True, force=True)
            self.log.info("Removed %s after its failed start", self.object_name)
        except Exception as exc:  # noqa: BLE001
            self.log.warning("Could not remove %s after a failed start: %s", self.object_name, exc)
        self.object_id = ""
