"""The packages section of mlworkshop.yaml: where students' `pip install` gets packages from, and
where their own and the admin's shared installs go.

Knows nothing about JupyterHub; hub/package_index.py and hub/pysite_env.py read it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from .base import Section

# A root hub's package index listens below 1024 (like the hub's API, config/model.py): while the
# hub is stopped no student can bind the port and hand the other students' pip made-up packages.
ROOT_INDEX_PORT = 883
USER_INDEX_PORT = 3141


class PackagesConfig(Section):
    index: Literal["pypi", "local"] = Field(
        "pypi",
        description="Where students' pip looks for packages. pypi: pip's own default (needs "
        "internet). local: a package cache the hub runs (devpi-server, as an account of its own): "
        "it holds the wheels of `seed` and of `mlworkshop packages add`, fetches and keeps what "
        "students ask for while the internet is reachable, and serves what it has when not; "
        "students' servers get PIP_INDEX_URL pointing at it.",
    )
    port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description=f"Loopback port of the local package index. Empty: {ROOT_INDEX_PORT} when the "
        f"hub runs as root (no student can answer in its place while it is down), "
        f"{USER_INDEX_PORT} otherwise.",
    )
    offline: bool = Field(
        False,
        description="The local index never contacts the internet (a room whose network hangs "
        "instead of refusing): it serves only the wheels it has. False: it fetches through when "
        "the internet answers.",
    )
    seed: list[Path] = Field(
        default_factory=list,
        description="Folders of wheels the local index takes in at every start (e.g. the wheels/ "
        "folder of an install bundle); files it already has are skipped.",
    )
    user_installs: bool = Field(
        True,
        description="Students' `pip install` (and `%pip install` in a notebook) goes into their "
        "own home (~/.local, Python's user site), survives server restarts and changes nothing "
        "for anyone else. False: students cannot install packages.",
    )

    @field_validator("seed")
    @classmethod
    def _absolute(cls, value: list[Path]) -> list[Path]:
        for path in value:
            if not path.is_absolute():
                raise ValueError(f"{path} must be an absolute path, such as /srv/bundle/wheels")
        return value
