"""What a doctor check returns, and what every check is given.

A Finding says what is wrong (or that all is well) in words a lab admin can act on: what it
means, and the command that fixes it. `repair` is the safe fix `--fix` and the watch service
apply (None: only a person can fix it); it is never serialised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ...config import MLWorkshopConfig
from ...site import Site

Severity = Literal["ok", "warn", "error"]
RANK = {"ok": 0, "warn": 1, "error": 2}


@dataclass
class Finding:
    id: str  # stable, e.g. "disk", "content-permissions", "fork-server"
    severity: Severity
    message: str  # what it means
    fix: str = ""  # the command (or step) that fixes it
    repair: Callable[[], str] | None = field(default=None, repr=False, compare=False)

    @property
    def fixable(self) -> bool:
        return self.repair is not None

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "severity": self.severity,
            "message": self.message,
            "fix": self.fix,
            "fixable": self.fixable,
        }


def ok(id: str, message: str) -> Finding:
    return Finding(id, "ok", message)


@dataclass
class Context:
    """What the checks share: the site, its config (None when mlworkshop.yaml does not load) and
    the hub's REST API (a HubClient, or None when the hub does not answer)."""

    site: Site
    cfg: MLWorkshopConfig | None
    hub: object | None = None  # ops.doctor.hubclient.HubClient
    cache: dict = field(default_factory=dict)
