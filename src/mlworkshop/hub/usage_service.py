"""The usage service in JupyterHub's config: a hub-managed service (FastAPI, mlworkshop.usage.service)
with its own role, two custom scopes for scripts, and access for every user (each sees only
themselves; the service decides that).

`usage_service_config(cfg, site)` returns values (usage.service_port 0: the free loopback port
`init` picked once per site and kept in <site>/state/usage_service_port, like the secrets, so two
hubs on one machine never share a usage service and the same site always maps to the same config);
hub/configure.py's apply_services sets them, with the hub's other services, in one place.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from ..config import MLWorkshopConfig
from ..site import Site
from ..usage.settings import (
    CONFIG_ENV,  # the service reads it there (usage.settings.service_config)
)
from .service_accounts import USAGE_ACCOUNT, isolating

USAGE_SERVICE = "usage"
SCOPE_READ = "custom:mlworkshop-usage:read"
SCOPE_ADMIN = "custom:mlworkshop-usage:admin"
ACCESS = f"access:services!service={USAGE_SERVICE}"


@dataclass
class UsageServiceConfig:
    services: list[dict] = field(default_factory=list)
    roles: list[dict] = field(default_factory=list)
    custom_scopes: dict[str, dict] = field(default_factory=dict)
    extra_user_scopes: set[str] = field(default_factory=set)


def site_port(site: Site) -> int:
    """The usage service's port when usage.service_port is 0: the one `init` picked for this site."""
    return site.usage_service_port()


def runs_as_own_account(cfg: MLWorkshopConfig) -> bool:
    """A root hub runs the usage service (a web app every student reaches) as its own account.
    Not with the docker backend: there it reads container stats from the engine's socket, which
    is root's to give in any case (membership of its group is root in all but name); nor with the
    kubernetes backend, whose pod stats come through the hub's kubeconfig (root's, 0600: a
    credential that starts pods on every node is no less than root)."""
    return isolating() and cfg.spawner.backend not in ("docker", "kubernetes")


def service_config_json(cfg: MLWorkshopConfig) -> str:
    """The hub's config for the service, which cannot read mlworkshop.yaml (root's, 0600); without
    the hub database's URL, which it has no use for (it may hold a password)."""
    return cfg.model_copy(
        update={"hub": cfg.hub.model_copy(update={"db_url": None})}
    ).model_dump_json()


def usage_service_config(cfg: MLWorkshopConfig, site: Site) -> UsageServiceConfig:
    if not cfg.usage.enabled:
        return UsageServiceConfig()
    service = {
        "name": USAGE_SERVICE,
        "url": f"http://127.0.0.1:{cfg.usage.service_port or site_port(site)}",
        "command": [sys.executable, "-m", "mlworkshop.usage.service"],
        "environment": {"MLWORKSHOP_SITE": str(site.root), CONFIG_ENV: service_config_json(cfg)},
        "cwd": "/",  # not the hub's (<site>/state), which the service's account cannot enter
        **({"user": USAGE_ACCOUNT} if runs_as_own_account(cfg) else {}),
        "oauth_no_confirm": True,
        "timeout": 120,  # a hub on a loaded machine must not give up on itself because this starts slowly
        "display": True,
        "info": {"description": "Usage, quotas and costs"},
    }
    roles = [
        {
            "name": "mlworkshop-usage-service",
            "description": "The usage service: lists running servers, stops servers at their quota.",
            "scopes": ["list:users", "read:users", "read:servers", "delete:servers"],
            "services": [USAGE_SERVICE],
        },
        {
            "name": "mlworkshop-usage-admin",
            "description": "Read everyone's usage and change quotas through the usage service's API.",
            "scopes": [SCOPE_READ, SCOPE_ADMIN, ACCESS],
            "users": sorted(cfg.auth.admin_users),
            "services": [],
        },
    ]
    custom_scopes = {
        SCOPE_READ: {
            "description": "Read every user's usage, sessions and reports in the usage service."
        },
        SCOPE_ADMIN: {
            "description": "Change quotas, record or end sessions and stop servers through the usage service.",
            "subscopes": [SCOPE_READ],
        },
    }
    return UsageServiceConfig([service], roles, custom_scopes, {ACCESS})
