"""The spawner.docker section of mlworkshop.yaml: one container per user (Docker or podman).

Everything here has a default, so `spawner.backend: docker` alone works on a host whose Docker
socket is at the usual place and which has built or loaded the default image
(`mlworkshop images build` / `mlworkshop images load`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import Field, field_validator, model_validator

from .base import Section, check_non_root_user, check_size

T = TypeVar("T")


def image_for_profile(profile_images: Mapping[str, T], slug: str | None, default: T) -> T:
    """What a spawn profile picks from profile_images (names here, references in the spawner):
    its exact slug, then its kind before the dash ("gpu-2" -> "gpu"), else `default`."""
    if slug:
        if slug in profile_images:
            return profile_images[slug]
        kind = str(slug).split("-", 1)[0]
        if kind in profile_images:
            return profile_images[kind]
    return default


class DockerImage(Section):
    name: str = Field(
        ...,
        pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$",
        description="Short name of this choice (what profiles and the spawn form refer to), e.g. cuda.",
    )
    image: str = Field(
        ..., min_length=1, description="Image reference, e.g. localhost/mlworkshop-user:cuda."
    )
    description: str = Field("", description="One line users read when choosing.")


DEFAULT_IMAGES = [
    DockerImage(
        name="default",
        image="localhost/mlworkshop-user:latest",
        description="JupyterLab, PyTorch (CPU), Transformers, scikit-learn",
    ),
]


class DockerBackendConfig(Section):
    url: str = Field(
        "unix:///var/run/docker.sock",
        description="Docker API socket. Docker's own, or podman's Docker-compatible one "
        "(e.g. unix:///run/podman/podman.sock); tcp://host:2375 works too.",
    )
    images: list[DockerImage] = Field(
        default_factory=lambda: [i.model_copy() for i in DEFAULT_IMAGES],
        description="Images users' servers may run: a list of {name, image, description}.",
    )
    default_image: str = Field(
        "default",
        description="Name (from images) of the image a server runs unless a profile picks another.",
    )
    profile_images: dict[str, str] = Field(
        default_factory=dict,
        description="Spawn profile -> image name, e.g. {gpu: cuda, npu: ascend}. A key matches a "
        "profile's slug (gpu-2) or its kind before the dash (gpu, npu, cpu).",
    )
    pull_policy: Literal["never", "ifnotpresent", "always"] = Field(
        "ifnotpresent",
        description="never: the image must be on the host (offline sites); ifnotpresent: pull when "
        "missing; always: pull before every start.",
    )
    network: str = Field(
        "bridge",
        description="bridge: the engine's default network, the server published on 127.0.0.1 "
        "(Docker and podman); host: the host's network, a free port per server (needs user auto on a "
        "root hub: the hub believes a port only when the student's own account listens on it); "
        "any other name: "
        "that network, servers reached at their container IP (the hub must be on it too, as in "
        "deploy/docker/docker-compose.yml).",
    )
    hub_connect_url: str = Field(
        "auto",
        description="URL containers use to reach the hub's API. auto: the network's gateway as the "
        "engine reports it (podman: http://10.88.0.1:<hub.internal_port>, Docker: 172.17.0.1), or "
        "127.0.0.1 on the host network. Set it when the hub runs in a container, e.g. http://hub:8081.",
    )
    hub_ip: str = Field(
        "0.0.0.0",
        description="Address the hub's API binds to for containers on a bridge network (the bridge "
        "address only exists while a container runs, so bind all addresses; API calls need tokens).",
    )
    cpu_limit: float | None = Field(
        None,
        gt=0,
        description="CPUs per server (empty: no limit). With a spawn profile's limit too, the stricter one applies.",
    )
    mem_limit: str | None = Field(
        None,
        description="Memory per server, e.g. 4G (empty: no limit). With a spawn profile's limit too, the stricter one applies.",
    )
    environment: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment variables in every container (added to spawner.environment).",
    )
    nvidia_devices: Literal["auto", "device_requests", "cdi"] = Field(
        "auto",
        description="How a container gets its NVIDIA GPUs. device_requests: Docker with the NVIDIA "
        "Container Toolkit (--gpus device=N); cdi: CDI names nvidia.com/gpu=N (podman; needs "
        "`nvidia-ctk cdi generate`); auto: cdi on podman (which ignores device requests), else device_requests.",
    )
    home: str = Field(
        "/home/jovyan",
        description="The folder users land in inside the container (JupyterLab's root).",
    )
    user: str = Field(
        "auto",
        description="uid:gid the container runs as. auto: the user's own system account when the hub "
        "is root (so files on the mounts belong to them), else the hub's own uid:gid. Never root.",
    )
    group_add: list[str] = Field(
        default_factory=lambda: ["100"],
        description="Extra groups (numeric) in the container; 100 ('users') makes the image's home writable.",
    )
    host_site_dir: str = Field(
        "",
        description="Where the site folder is on the engine's host, when the hub runs in a container "
        "and sees it at another path. Empty: the same path.",
    )
    remove: bool = Field(
        True,
        description="Remove a user's container when their server stops (files on mounts stay).",
    )
    name_template: str = Field(
        "mlw-{username}",
        description="Container name; {username} is the user's name made safe for container names.",
    )
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="DockerSpawner traitlets passed as they are, e.g. {extra_host_config: {shm_size: 2g}}.",
    )

    @field_validator("mem_limit")
    @classmethod
    def _mem(cls, value: str | None) -> str | None:
        return check_size(value)

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        return check_non_root_user(value)

    @field_validator("group_add")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        for g in value:
            if not g.isdigit():
                raise ValueError(f"group {g!r} must be a numeric gid, e.g. 100")
        return value

    @field_validator("hub_connect_url")
    @classmethod
    def _hub_url(cls, value: str) -> str:
        if value != "auto" and not value.startswith(("http://", "https://")):
            raise ValueError("must be auto or an http(s):// URL such as http://hub:8081")
        return value.rstrip("/") if value != "auto" else value

    @field_validator("name_template")
    @classmethod
    def _template(cls, value: str) -> str:
        if "{username}" not in value:
            raise ValueError("must contain {username}, else two users' containers would clash")
        return value

    @model_validator(mode="after")
    def _host_network_needs_own_accounts(self) -> DockerBackendConfig:
        if self.network == "host" and self.user != "auto":
            raise ValueError(
                f"network host with user {self.user!r}: every container would run as one uid on "
                "the host's network, where a student can listen on the port meant for a "
                "classmate's server and only the listener's account tells them apart. Fix: "
                "user auto (each student's own account; a root hub), or network bridge"
            )
        return self

    @model_validator(mode="after")
    def _image_names(self) -> DockerBackendConfig:
        names = [i.name for i in self.images]
        if not names:
            raise ValueError("images: list at least one image")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"images: names must be unique ({', '.join(dupes)} twice)")
        if self.default_image not in names:
            raise ValueError(
                f"default_image {self.default_image!r} is not in images ({', '.join(names)})"
            )
        for key, name in self.profile_images.items():
            if name not in names:
                raise ValueError(
                    f"profile_images[{key!r}] = {name!r} is not in images ({', '.join(names)})"
                )
        return self

    def image_for(self, name: str | None) -> str:
        """The image reference for an image name (None: the default)."""
        wanted = name or self.default_image
        for item in self.images:
            if item.name == wanted:
                return item.image
        raise KeyError(wanted)

    def image_name_for_profile(self, slug: str | None) -> str:
        """The image name a spawn profile picks (exact slug, then its kind before the dash)."""
        return image_for_profile(self.profile_images, slug, self.default_image)
