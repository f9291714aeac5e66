"""The single-user server mlworkshop starts: jupyterhub-singleuser with TCP_NODELAY on websockets,
and the list of nbconvert exporters worked out once for everyone.

jupyter-server never sets TCP_NODELAY, so Nagle's algorithm holds each small kernel message back
for the peer's delayed ACK: a `1+1` round trip through the proxy takes ~48 ms instead of ~7 ms.

JupyterLab asks every new server for /api/nbconvert as it loads (the "Save and Export Notebook
As" menu). jupyter-server answers by scanning every installed distribution's entry points and
constructing every exporter (templates read from disk), in each server: measured with py-spy
during a browser's first load, 30 % of a forked server's CPU. The answer depends only on what is
installed, so the fork server works it out once before forking and every server answers from it.
(A student's own ~/.jupyter nbconvert config no longer hides exporters from that menu; converting
still reads it.)

The next largest share was /lab/api/settings checking every plugin's schema against JSON
Schema's metaschema (jsonschema's check_schema), again in each server for the same installed
files: the fork server checks them once and servers skip a schema it has seen, byte for byte.
The installed language packs (entry points, scanned for each /lab/api/translations request) are
looked up once the same way, and so are the installed kernel provisioners: jupyter_client's
KernelProvisionerFactory scans every distribution's entry points when a server starts its first
kernel (py-spy in a 60-student rush: 7 % of the fork server's family's samples, ~0.08 CPU-s a
server). A provisioner a kernelspec names that the list lacks (installed later, or in a student's
own packages) is still looked up by name, as jupyter_client does.
jupyter_server's own event schemas (YAML read and checked at every server's start) are built once
too (share_event_schemas).

Every server, whatever its backend, also reads mlworkshop's JupyterLab page config (LAB_CONFIG).

JupyterHub passes a server nothing on its command line (everything comes in the environment),
yet traitlets builds a full argparse parser for an empty one: every option of every configurable
class the server knows, ~10 ms of each forked server's start (process time of the call in a
forked child). An empty command line now skips the parser, which would have found nothing in it.
(The pages that walk touched are touched later in the start anyway: no memory is saved.)
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path


def enable_websocket_nodelay() -> None:
    from jupyter_server.base.websocket import WebSocketMixin

    if getattr(WebSocketMixin.open, "_mlw_nodelay", False):
        return
    original_open = WebSocketMixin.open

    def open_with_nodelay(self, *args, **kwargs):
        self.set_nodelay(True)
        return original_open(self, *args, **kwargs)

    open_with_nodelay._mlw_nodelay = True
    WebSocketMixin.open = open_with_nodelay


def skip_empty_command_line() -> None:
    """ServerApp.parse_command_line with no arguments sets what traitlets would have found in
    them (none) without building its parser. Any argument: traitlets' own parsing, unchanged."""
    from jupyter_server.serverapp import ServerApp

    if getattr(ServerApp.parse_command_line, "_mlw_empty", False):
        return
    original = ServerApp.parse_command_line

    def parse_command_line(self, argv=None):
        if sys.argv[1:] if argv is None else argv:
            return original(self, argv)
        self.argv = []
        self.extra_args = []
        return None

    parse_command_line._mlw_empty = True
    ServerApp.parse_command_line = parse_command_line


def share_export_list(warm: bool = True) -> None:
    """nbconvert's get_export_names() and get_exporter(name), when asked without a config (as
    jupyter-server's /api/nbconvert does), answered from a cache made here; call it before
    forking so the work is done once (warm: fill the cache now). Idempotent."""
    from nbconvert.exporters import base

    if getattr(base.get_export_names, "_mlw_shared", False):
        return
    names_of, exporter_of = base.get_export_names, base.get_exporter

    @functools.cache
    def cached_names() -> tuple[str, ...]:
        return tuple(names_of())

    @functools.cache
    def cached_exporter(name):
        return exporter_of(name)

    def get_export_names(config=None):
        return list(cached_names()) if config is None else names_of(config)

    def get_exporter(name, config=None):
        return cached_exporter(name) if config is None else exporter_of(name, config)

    for exporter in cached_names() if warm else ():  # every exporter the menu will ask for
        try:
            cached_exporter(exporter)
        except Exception:  # noqa: BLE001,S112 - a broken or disabled exporter is asked again later
            continue
    get_export_names._mlw_shared = True
    base.get_export_names, base.get_exporter = get_export_names, get_exporter


class _SchemaChecksOnce:
    """Stands in for jupyterlab_server.settings_utils.Validator (Draft7Validator): instances are
    real Draft7Validators; check_schema() skips a schema already found valid in this process (or
    in the fork server before it forked)."""

    checked: set[str] = set()

    def __new__(cls, *args, **kwargs):
        from jsonschema import Draft7Validator

        return Draft7Validator(*args, **kwargs)

    @classmethod
    def check_schema(cls, schema) -> None:
        from jsonschema import Draft7Validator

        key = json.dumps(schema, sort_keys=True)
        if key in cls.checked:
            return
        Draft7Validator.check_schema(schema)
        cls.checked.add(key)


def _installed_schemas() -> list[Path]:
    """JupyterLab's own plugin schemas and those of every installed extension."""
    from jupyter_core.paths import jupyter_path
    from jupyterlab.commands import get_app_dir

    roots = [Path(get_app_dir()) / "schemas"]
    for folder in jupyter_path("labextensions"):
        roots += Path(folder).glob("*/schemas")
        roots += Path(folder).glob("@*/*/schemas")
    return [path for root in roots if root.is_dir() for path in root.rglob("*.json")]


def share_schema_checks(warm: bool = True) -> None:
    """Check the installed schemas now (warm: before forking) and let servers skip them.
    Idempotent."""
    from jupyterlab_server import settings_utils

    if settings_utils.Validator is _SchemaChecksOnce:
        return
    for path in _installed_schemas() if warm else ():
        try:
            _SchemaChecksOnce.check_schema(json.loads(path.read_text(encoding="utf-8")))
        except Exception:  # noqa: BLE001,S112 - an invalid one is checked (and refused) per request
            continue
    settings_utils.Validator = _SchemaChecksOnce


def share_language_pack_lookup(warm: bool = True) -> None:
    """jupyterlab_server's scans of installed language packs (entry points), made once. Idempotent."""
    from jupyterlab_server import translation_utils as tu

    for name in ("_get_installed_language_pack_locales", "_get_installed_package_locales"):
        scan = getattr(tu, name)
        if not hasattr(scan, "cache_info"):
            cached = functools.cache(scan)
            if warm:
                cached()
            setattr(tu, name, cached)


def share_provisioner_lookup(warm: bool = True) -> None:
    """jupyter_client's scan of installed kernel provisioners (its own seam for it,
    KernelProvisionerFactory._get_all_provisioners), made once. Idempotent."""
    from jupyter_client.provisioning.factory import KernelProvisionerFactory as factory

    scan = factory._get_all_provisioners
    if not hasattr(scan, "cache_info"):
        cached = functools.cache(scan)
        if warm:
            cached()
        factory._get_all_provisioners = staticmethod(cached)


def share_event_schemas() -> None:
    """jupyter_server's own event schemas (contents, gateway client, kernel actions), read from
    their YAML files and checked against jupyter_events' metaschema once, in the fork server:
    every server's start did it again (a forked child: 8-10 ms and 4 MiB of pages written,
    2.7 ms and 1.7 MiB with these shared). Only those installed files, by path; any other
    schema is registered as jupyter_events does. Idempotent."""
    from jupyter_events import schema_registry
    from jupyter_events.schema import EventSchema
    from jupyter_server.serverapp import DEFAULT_EVENTS_SCHEMA_PATH

    registry = schema_registry.SchemaRegistry
    if getattr(registry.register, "_mlw_shared", False):
        return
    built = {}
    for path in sorted(Path(DEFAULT_EVENTS_SCHEMA_PATH).rglob("*.yaml")):
        try:
            built[str(path)] = EventSchema(path)
        except Exception:  # noqa: BLE001,S112 - a broken one fails in the server, as it did
            continue
    original = registry.register

    def register(self, schema):
        if isinstance(schema, (str, os.PathLike)):
            schema = built.get(os.fspath(schema), schema)
        return original(self, schema)

    register._mlw_shared = True
    registry.register = register


def share_first_notebook_work() -> None:
    """What a browser's first new notebook and first /lab/api/translations cost each server (py-spy
    during a browser rush: 4 % of the servers' samples each), done before forking: nbformat's
    validator for the current format compiled (fastjsonschema; cached per process), and Babel's
    locale data for the display names of the installed language packs read from disk (cached
    per process too). Only warms caches the libraries keep themselves."""
    from jupyterlab_server.translation_utils import (
        DEFAULT_LOCALE,
        _get_installed_language_pack_locales,
        get_language_packs,
    )
    from nbformat.v4 import new_notebook

    new_notebook()  # validates, and so compiles the validator
    for locale in [DEFAULT_LOCALE, *_get_installed_language_pack_locales()[0]]:
        get_language_packs(locale)


def share_installed_lookups(warm: bool = True) -> None:
    """Everything above, done once: in the fork server before it forks (warm: every server
    inherits the answers). A server started cold (containers, Kubernetes, no fork server) only
    installs the caches, which fill at the first request: working them out before the server
    answers would make its start 0.4 s longer for what the first page load needs anyway."""
    share_export_list(warm)
    share_schema_checks(warm)
    share_language_pack_lookup(warm)
    share_provisioner_lookup(warm)
    if warm:
        share_event_schemas()
        share_first_notebook_work()


# JupyterLab's config for every student's server, whatever the backend (local, container, pod):
# labconfig/page_config.json turns JupyterLab's build check off. Each page load asked
# GET /lab/api/build, which runs node as the student (~0.35 CPU-s a call, twice per student in a
# browser rush) to check for a rebuild of an installation students cannot rebuild.
LAB_CONFIG = str(Path(__file__).resolve().parent.parent / "lab_config")


def use_lab_config(environ=os.environ) -> None:
    """LAB_CONFIG on JUPYTER_CONFIG_PATH, last (the admin's and the language's folders win), once.
    Local servers have it from their spawner (hub/configure.py); containers and pods get it here,
    from the image's command."""
    paths = [p for p in environ.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p]
    if LAB_CONFIG not in paths:
        environ["JUPYTER_CONFIG_PATH"] = os.pathsep.join([*paths, LAB_CONFIG])


def main() -> None:
    from ..lazy_imports import defer_rfc3987_syntax
    from .static import serve_precompressed

    defer_rfc3987_syntax()  # a cold server's 1.1 s for nothing (mlworkshop/lazy_imports.py)

    enable_websocket_nodelay()
    skip_empty_command_line()
    use_lab_config()
    share_installed_lookups(warm=False)
    serve_precompressed()  # the .gz files the fork server wrote (fastpath/static.py)
    from jupyterhub.singleuser import main as singleuser_main

    singleuser_main()


if __name__ == "__main__":
    main()
