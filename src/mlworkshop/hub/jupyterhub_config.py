"""The JupyterHub config file `mlworkshop up` runs: the site's mlworkshop.yaml mapped onto traitlets.

Extra `*.py` files in <site>/jupyterhub_config.d/ are loaded last, as an escape hatch.
"""

import os
from pathlib import Path

from mlworkshop.config import load_config
from mlworkshop.hub.configure import configure
from mlworkshop.hub.metrics import register_metrics
from mlworkshop.hub.priority import set_hub_priority
from mlworkshop.hub.sqlite_tuning import use_wal_for_sqlite
from mlworkshop.site import Site

c = get_config()  # noqa: F821 (provided by JupyterHub)
_site = Site(Path(os.environ["MLWORKSHOP_SITE"]))
_cfg = load_config(_site.root)
configure(c, _cfg, _site)
register_metrics(_site, _cfg)  # ours beside JupyterHub's at /hub/metrics (hub/metrics.py)
use_wal_for_sqlite()  # before JupyterHub opens its database
set_hub_priority(_cfg.hub.nice)  # before the proxy, services and fork server start: they inherit it

if _cfg.spawner.backend == "local" and _cfg.spawner.local.preload:
    from mlworkshop.fastpath.client import forkserver_for

    _local = _cfg.spawner.local
    forkserver_for(_site.state).start(  # preloads JupyterLab (and kernels) while the hub starts
        kernel_socket=_site.kernel_socket if _local.fork_kernels else None,
        student_prefix=_local.user_prefix,
    )

_extra = _site.root / "jupyterhub_config.d"
if _extra.is_dir():
    for _path in sorted(_extra.glob("*.py")):
        exec(compile(_path.read_text(), str(_path), "exec"), {"c": c, "get_config": lambda: c})
    from mlworkshop.hub.lifecycle import check_spawner_sections

    check_spawner_sections(c)  # a section a file there changed is checked like mlworkshop.yaml
