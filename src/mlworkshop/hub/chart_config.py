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
    before = {
        key: list(c.JupyterHub[key]) if key in c.JupyterHub else []
        for key in ("services", "load_roles")
    }
    # configure()'s steps but apply_hub: ports, proxy, cookie secret and TLS are the chart's
    for apply in (apply_auth, apply_spawner, apply_services, apply_templates, apply_language):
        apply(c, chart, site)
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
