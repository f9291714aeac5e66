"""What the usage service is told when it starts: JupyterHub's service environment (where the hub's
API is, the service's token, its prefix and OAuth client) and mlworkshop's config.

A root hub runs the service as its own account, which cannot read mlworkshop.yaml (root's, 0600):
the hub passes the config as JSON in MLWORKSHOP_CONFIG_JSON (hub/usage_service.py writes it, this
module reads it; the service never imports the hub).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from ..config import MLWorkshopConfig
from ..site import Site

CONFIG_ENV = "MLWORKSHOP_CONFIG_JSON"


@dataclass(frozen=True)
class ServiceSettings:
    api_url: str
    token: str
    prefix: str = "/services/usage/"
    client_id: str = "service-usage"
    callback_url: str = "/services/usage/oauth_callback"
    hub_prefix: str = "/hub/"
    host: str = "127.0.0.1"
    port: int = 8082

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ServiceSettings:
        url = urlparse(environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8082"))
        prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/usage/")
        return cls(
            api_url=environ["JUPYTERHUB_API_URL"],
            token=environ["JUPYTERHUB_API_TOKEN"],
            prefix=prefix,
            client_id=environ.get("JUPYTERHUB_CLIENT_ID", "service-usage"),
            callback_url=environ.get("JUPYTERHUB_OAUTH_CALLBACK_URL", prefix + "oauth_callback"),
            hub_prefix=environ.get("JUPYTERHUB_BASE_URL", "/") + "hub/",
            # the hub inside the cluster routes to its pod's address (hub/chart_config.py)
            host=environ.get("MLWORKSHOP_USAGE_BIND") or url.hostname or "127.0.0.1",
            port=url.port or 8082,
        )


def service_config(environ: Mapping[str, str], site: Site) -> MLWorkshopConfig:
    """In the service: the config the hub passed, else mlworkshop.yaml (run by hand, for tests)."""
    if environ.get(CONFIG_ENV):
        return MLWorkshopConfig.model_validate_json(environ[CONFIG_ENV])
    from ..config import load_config

    return load_config(site.root)
