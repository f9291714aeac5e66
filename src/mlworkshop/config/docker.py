"""The spawner.docker section of mlworkshop.yaml: one container per user (Docker or podman)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DockerBackendConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    url: str = Field("unix:///var/run/docker.sock", description="Docker API socket (podman's works too).")
    image: str = Field("localhost/mlworkshop-user:latest", description="Image user servers run.")
