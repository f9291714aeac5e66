"""The doctor in JupyterHub's config: the watch service (`mlworkshop doctor --watch`, run by the
hub, restarted by it if it dies), its role, and the two API endpoints it and `mlworkshop doctor`
use (hub/doctor_api.py). Values only; hub/configure.py's apply_services sets them.

The watch service runs as the hub's user -- root under a root hub -- because its repairs need it
(content owned by root, students' processes). It is given no secret but its own API token, reads
no file a student can write, and changes content only through descriptors opened without
following links (ops/doctor/permissions.py).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from ..config import MLWorkshopConfig
from ..site import Site

DOCTOR_SERVICE = "doctor"


@dataclass
class DoctorServiceConfig:
    services: list[dict] = field(default_factory=list)
    roles: list[dict] = field(default_factory=list)
    handlers: list[tuple] = field(default_factory=list)


def doctor_service_config(cfg: MLWorkshopConfig, site: Site) -> DoctorServiceConfig:
    from .doctor_api import doctor_handlers

    local = cfg.spawner.local
    handlers = doctor_handlers(
        str(site.state),
        str(site.kernel_socket) if local.preload and local.fork_kernels else None,
        local.user_prefix,
    )
    if not cfg.doctor.watch_every:
        return DoctorServiceConfig(handlers=handlers)
    service = {
        "name": DOCTOR_SERVICE,
        "command": [
            sys.executable,
            "-m",
            "mlworkshop.cli.main",
            "doctor",
            "--watch",
            f"--every={cfg.doctor.watch_every}",
            f"--site={site.root}",
        ],
        # the hub's own overrides (`up --port` sets MLWORKSHOP_HUB__PORT): the doctor sees its config
        "environment": {
            **{k: v for k, v in os.environ.items() if k.startswith("MLWORKSHOP_")},
            "MLWORKSHOP_SITE": str(site.root),
        },
        "cwd": "/",
    }
    role = {
        "name": "mlworkshop-doctor",
        "description": "The doctor's watch service: sees every server, stops servers that are gone, "
        "restarts the fork server and managed services.",
        "scopes": [
            "list:users",
            "read:users",
            "read:servers",
            "admin:server_state",
            "admin:servers",
        ],
        "services": [DOCTOR_SERVICE],
    }
    return DoctorServiceConfig([service], [role], handlers)
