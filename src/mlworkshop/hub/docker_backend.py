"""The docker backend: a container per user through DockerSpawner (Docker or podman)."""

from __future__ import annotations

from traitlets.config import Config

from ..config import MLWorkshopConfig
from ..site import Site


def apply_docker_spawner(c: Config, cfg: MLWorkshopConfig, site: Site) -> None:
    raise NotImplementedError("spawner.backend: docker is being built (issue 4)")
