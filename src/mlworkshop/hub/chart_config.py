"""The hub inside the cluster (Zero to JupyterHub chart): the chart's jupyterhub_config.py runs
first (proxy, hub service, database, cookie secret, its culler: all the chart's), then its
extraConfig calls `configure_in_chart(c)` (ops/k8s_values.py writes that line), which applies the
same mapping `mlworkshop up` applies, minus what the chart owns.

mlworkshop.yaml comes from the chart's values (an extraFile); it is copied into the site on the
hub's claim at every start, so `helm upgrade` with new values is how the config changes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from traitlets.config import Config

from ..config import load_config
from ..site import Site, init_site
from .auth import TEMPLATES

DEFAULT_SITE = "/srv/jupyterhub/mlworkshop"
DEFAULT_CONFIG_FILE = "/usr/local/etc/mlworkshop/mlworkshop.yaml"
# the usage service's port in the hub's pod (usage.service_port 0): fixed, because the values name
# it on the hub's Service and in its NetworkPolicy before the site exists
CHART_USAGE_PORT = 8082


def chart_usage_port(cfg) -> int:
    """The usage service's port in the chart: usage.service_port, else CHART_USAGE_PORT (the hub's
    configure and `k8s values` both ask here)."""
    return cfg.usage.service_port or CHART_USAGE_PORT


# what the hub's environment has and its services need: the in-cluster API (the usage service's
# pod samples); JupyterHub gives a service only the environment it is configured with
CLUSTER_ENV = ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")


def _hub_service_name() -> str:
    """The chart's hub Service (`hub`, or its fullname with a release name prefix)."""
    try:
        from z2jh import get_name  # the chart's helper, beside its jupyterhub_config.py

        return get_name("hub")
    except Exception:  # noqa: BLE001 - outside the chart's pod (tests): the chart's default
        return "hub"


def _reach_usage_from_the_proxy(c: Config, environ, port: int) -> None:
    """The chart's proxy runs in a pod of its own: the usage service listens on the hub pod's
    address and is routed by the hub Service's name (the values add the port to that Service and
    to the hub's NetworkPolicy), not on loopback as beside a local proxy."""
    services = list(c.JupyterHub.services) if "services" in c.JupyterHub else []
    for service in services:
        if service.get("name") != "usage" or "url" not in service:
            continue
        service["url"] = f"http://{_hub_service_name()}:{port}"
        service["environment"] = {
            **service.get("environment", {}),
            "MLWORKSHOP_USAGE_BIND": "0.0.0.0",
            **{key: environ[key] for key in CLUSTER_ENV if key in environ},
        }
    c.JupyterHub.services = services


def _merge_lists(c: Config, key: str, before: list) -> None:
    """The chart's services and roles (its culler) stay beside ours."""
    ours = list(c.JupyterHub[key]) if key in c.JupyterHub else []
    names = {item.get("name") for item in ours}
    c.JupyterHub[key] = [item for item in before if item.get("name") not in names] + ours


def configure_in_chart(c: Config, environ: os._Environ | dict | None = None) -> Config:
    from .configure import (
        apply_auth,
        apply_language,
        apply_services,
        apply_spawner,
        apply_templates,
    )

    environ = os.environ if environ is None else environ
    site = Site(Path(environ.get("MLWORKSHOP_SITE", DEFAULT_SITE)))
    source = Path(environ.get("MLWORKSHOP_CONFIG_FILE", DEFAULT_CONFIG_FILE))
    site.root.mkdir(parents=True, exist_ok=True)
    if source.exists():
        shutil.copyfile(source, site.config_file)
        os.chmod(site.config_file, 0o600)
    init_site(site)
    cfg = load_config(site.root, environ)
    if cfg.spawner.backend != "kubernetes":
        raise SystemExit(
            f"{source}: spawner.backend is {cfg.spawner.backend}; the chart runs servers as pods "
            "(set spawner.backend: kubernetes and run `mlworkshop k8s values` again)."
        )
    chart = cfg.model_copy(deep=True)
    chart.culler.enabled = False  # the chart's culler (cull.* in the values) does the job
    chart.usage.service_port = chart_usage_port(chart)
    before = {
        key: list(c.JupyterHub[key]) if key in c.JupyterHub else []
        for key in ("services", "load_roles")
    }
    # configure()'s steps but apply_hub: ports, proxy, cookie secret and TLS are the chart's
    for apply in (apply_auth, apply_spawner, apply_services, apply_templates, apply_language):
        apply(c, chart, site)
    _reach_usage_from_the_proxy(c, environ, chart.usage.service_port)
    for key, items in before.items():
        _merge_lists(c, key, items)
    c.JupyterHub.template_paths = [TEMPLATES]
    # one database for the hub, the accounts and the device table, as outside the cluster: the
    # site's (on the hub's claim with hub.db.type sqlite-pvc), or hub.db_url's. The chart's own
    # `sqlite:///jupyterhub.sqlite` is relative to the working folder, / in our image.
    c.JupyterHub.db_url = site.db_url(cfg)
    c.JupyterHub.cleanup_servers = False  # a hub restart leaves students' pods running
    c.KubeWorkspaceSpawner.isolate_users = False  # no system accounts in the hub's pod
    return c
