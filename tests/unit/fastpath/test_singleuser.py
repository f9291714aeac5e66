"""fastpath.singleuser: what every server would look up for itself on JupyterLab's first load
(nbconvert's exporters, the plugin schemas' metaschema checks, the installed language packs and
kernel provisioners) is
looked up once and answered the same. Each check runs in a fresh interpreter: the patches are
process-wide."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = r"""
import json
from nbconvert.exporters import base
from jupyterlab_server import settings_utils, translation_utils as tu
from jupyter_client.provisioning.factory import KernelProvisionerFactory
before = {
    "provisioners": sorted(KernelProvisionerFactory().get_provisioner_entries().items()),
    "names": base.get_export_names(),
    "classes": {n: base.get_exporter(n).__name__ for n in base.get_export_names()},
    "packs": tu._get_installed_language_pack_locales()[0],
    "package_locales": tu._get_installed_package_locales()[0],
}
from mlworkshop.fastpath.singleuser import share_installed_lookups, _SchemaChecksOnce
checked_before_use = None
share_installed_lookups(WARM)
share_installed_lookups(WARM)  # idempotent
checked_before_use = len(_SchemaChecksOnce.checked)
provisioners_before_use = KernelProvisionerFactory._get_all_provisioners.cache_info().currsize
import babel.localedata, nbformat.validator
validators_before_use = sorted(nbformat.validator.validators)
locales_before_use = sorted(babel.localedata._cache)
after = {
    "provisioners": sorted(KernelProvisionerFactory().get_provisioner_entries().items()),
    "names": base.get_export_names(),
    "classes": {n: base.get_exporter(n).__name__ for n in base.get_export_names()},
    "packs": tu._get_installed_language_pack_locales()[0],
    "package_locales": tu._get_installed_package_locales()[0],
}
# an invalid schema is still refused, a valid one is a real validator
try:
    settings_utils.Validator.check_schema({"type": 12})
    refused = False
except Exception:
    refused = True
validator = settings_utils.Validator({"type": "object", "properties": {"a": {"type": "integer"}}})
print(json.dumps({
    "same": before == after,
    "exporters": len(after["names"]),
    "schemas_checked": len(_SchemaChecksOnce.checked),
    "checked_before_use": checked_before_use,
    "provisioners": dict(after["provisioners"]),
    "provisioners_before_use": provisioners_before_use,
    "validators_before_use": [list(key) for key in validators_before_use],
    "locales_before_use": locales_before_use,
    "invalid_refused": refused,
    "validates": not validator.is_valid({"a": "x"}) and validator.is_valid({"a": 1}),
    "cached_names": base.get_export_names() is not base.get_export_names(),
}))
"""


def probe(warm: bool) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", f"WARM = {warm}\n" + PROBE],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_shared_lookups_answer_as_the_originals_and_still_refuse_bad_schemas():
    seen = probe(warm=True)  # the fork server's way: worked out before forking
    assert seen["same"], "the shared answers differ from what jupyter-server would compute"
    assert seen["exporters"] > 5 and seen["checked_before_use"] > 20
    assert seen["provisioners_before_use"] == 1
    assert {"local-provisioner", "mlworkshop-fork"} <= set(seen["provisioners"])
    # a new notebook's validator compiled, and the language packs' display names read
    assert [4, False] in [key[1:2] + key[3:] for key in seen["validators_before_use"]]
    assert {"en", "zh_Hans", "zh_Hant"} <= set(seen["locales_before_use"])
    assert seen["invalid_refused"] and seen["validates"]
    assert seen["cached_names"], "callers get their own list (they may change it)"


def test_a_cold_server_fills_the_same_caches_only_when_asked():
    """A server started cold (a container) installs the caches and answers its first requests
    from them as they fill: the same answers, nothing worked out before it starts."""
    seen = probe(warm=False)
    assert seen["same"] and seen["exporters"] > 5
    assert seen["checked_before_use"] == 0 and seen["provisioners_before_use"] == 0
    assert seen["validators_before_use"] == [] and seen["locales_before_use"] == []
    assert seen["invalid_refused"] and seen["validates"]


def test_every_server_reads_mlworkshops_lab_config_once_and_last():
    """Containers and pods start from the image's command: main() puts LAB_CONFIG on the path
    (the build check off), after the folders already there (an admin's, a language's), once."""
    import os

    from mlworkshop.fastpath.singleuser import LAB_CONFIG, use_lab_config

    environ: dict[str, str] = {}
    use_lab_config(environ)
    assert environ["JUPYTER_CONFIG_PATH"] == LAB_CONFIG
    with open(os.path.join(LAB_CONFIG, "labconfig", "page_config.json")) as f:
        page_config = json.load(f)
    assert page_config == {"buildAvailable": False, "buildCheck": False}

    environ = {"JUPYTER_CONFIG_PATH": os.pathsep.join(["/etc/admin", LAB_CONFIG, "/lang"])}
    use_lab_config(environ)  # a local server has it from its spawner already
    assert environ["JUPYTER_CONFIG_PATH"] == os.pathsep.join(["/etc/admin", LAB_CONFIG, "/lang"])
    environ = {"JUPYTER_CONFIG_PATH": "/etc/admin"}
    use_lab_config(environ)
    assert environ["JUPYTER_CONFIG_PATH"] == os.pathsep.join(["/etc/admin", LAB_CONFIG])


COMMAND_LINE = r"""
import json
from jupyter_server.serverapp import ServerApp
from mlworkshop.fastpath.singleuser import skip_empty_command_line
skip_empty_command_line()
skip_empty_command_line()  # idempotent
built = []
original = ServerApp._create_loader
ServerApp._create_loader = lambda self, *a, **k: built.append(1) or original(self, *a, **k)
empty = ServerApp()
empty.parse_command_line([])
given = ServerApp()
given.parse_command_line(["--ServerApp.port=9999", "--no-browser"])
print(json.dumps({
    "parsers": len(built),
    "empty": [empty.argv, empty.extra_args, empty.port],
    "given": [given.port, given.open_browser],
}))
"""


def test_an_empty_command_line_builds_no_parser_and_a_given_one_still_counts():
    out = subprocess.run(
        [sys.executable, "-c", COMMAND_LINE], capture_output=True, text=True, check=True
    ).stdout
    seen = json.loads(out.splitlines()[-1])
    assert seen["parsers"] == 1  # only for the command line that had something in it
    assert seen["empty"] == [[], [], 8888]
    assert seen["given"] == [9999, False]


EVENTS = r"""
import json, pathlib, tempfile
from jupyter_events import EventLogger
from jupyter_server.serverapp import DEFAULT_EVENTS_SCHEMA_PATH
from mlworkshop.fastpath.singleuser import share_event_schemas
share_event_schemas()
share_event_schemas()  # idempotent
installed = DEFAULT_EVENTS_SCHEMA_PATH / "kernel_actions" / "v1.yaml"
one, two = EventLogger(), EventLogger()
for logger in (one, two):
    logger.register_event_schema(installed)
sid = "https://events.jupyter.org/jupyter_server/kernel_actions/v1"
own = pathlib.Path(tempfile.mkdtemp()) / "own.yaml"
own.write_text("$id: https://example.org/own/v1\nversion: '1'\ntype: object\n"
               "title: own\ndescription: a schema of the server's own\nproperties: {}\n")
one.register_event_schema(own)
bad = own.with_name("bad.yaml")
bad.write_text("$id: https://example.org/bad/v1\ntype: object\nproperties: {}\n")
try:
    one.register_event_schema(bad)
    refused = False
except Exception:
    refused = True
print(json.dumps({
    "shared": one.schemas.get(sid) is two.schemas.get(sid),
    "own": one.schemas.get("https://example.org/own/v1").id,
    "bad_refused": refused,
}))
"""


def test_the_servers_event_schemas_are_read_once_and_others_as_before():
    out = subprocess.run(
        [sys.executable, "-c", EVENTS], capture_output=True, text=True, check=True
    ).stdout
    seen = json.loads(out.splitlines()[-1])
    assert seen == {"shared": True, "own": "https://example.org/own/v1", "bad_refused": True}
