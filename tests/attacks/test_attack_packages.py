"""A student against the packages of other students (issue 15): her own installs and start-up
hooks (.pth files in her user site) run in her processes only; she can write nowhere another
student's Python reads from (the hub's venv, the shared folder, their home); she cannot put a
package into the class's index, nor stand in for it on its port while the hub is down."""

from __future__ import annotations

import os
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import httpx

from mlworkshop.hub.packages import index_port, shared_site_packages
from mlworkshop.site import Site
from tests.integration.hubctl import Server
from tests.integration.test_offline_room import _end_index

from .test_attack_workspace import as_account, student_with_a_server

PY = "python{}.{}".format(*sys.version_info[:2])


def _user_site(hub, name: str) -> Path:
    return hub.site / "users" / name / ".local" / "lib" / PY / "site-packages"


async def test_her_installs_and_hooks_stay_hers(make_hub):
    hub = make_hub()
    mallory = student_with_a_server(hub, "mallory")
    bob = student_with_a_server(hub, "bob")
    account = hub.prefix + "mallory"
    marker_dir = Path(tempfile.mkdtemp(prefix="mlw-pth-", dir="/tmp"))
    os.chmod(marker_dir, 0o1777)
    marker = marker_dir / "ran"
    hook = f"import os; open('{marker}', 'a').write(str(os.getuid()) + chr(10))\n"
    targets = {
        "the hub's venv": Path(sysconfig.get_path("purelib")),
        "the shared folder": shared_site_packages(Site(hub.site)),
        "bob's home": hub.site / "users" / "bob",
        "bob's user site": _user_site(hub, "bob"),
    }
    for what, folder in targets.items():
        tried = as_account(
            account,
            f"mkdir -p '{folder}' 2>/dev/null; printf %s \"{hook}\" > '{folder}/zz-mallory.pth'",
        )
        assert tried.returncode != 0, f"mallory wrote into {what}"
        assert not (folder / "zz-mallory.pth").exists(), what
    # in her own user site she may (it is her Python)
    mine = _user_site(hub, "mallory")
    planted = as_account(
        account, f"mkdir -p '{mine}' && printf %s \"{hook}\" > '{mine}/zz-mallory.pth'"
    )
    assert planted.returncode == 0, planted.stderr

    b = Server(hub.url, "bob", bob.new_token("bob"))
    out = await b.run_code("import sys; print(any('/mallory/' in p for p in sys.path))")
    assert out.strip() == "False"
    assert not marker.exists(), "mallory's start-up hook ran in bob's kernel"
    # root's own Python on this machine does not read her folder either
    as_root = as_account("root", f"{sys.executable} -c 'import mlworkshop'")
    assert as_root.returncode == 0 and not marker.exists()

    m = Server(hub.url, "mallory", mallory.new_token("mallory"))
    await m.run_code("print(1)")  # her own kernel does run it: the hook is live, for her
    ran = set(marker.read_text().split())
    assert ran == {str(os.stat(hub.site / "users" / "mallory").st_uid)}, ran
    marker.unlink()
    marker_dir.rmdir()


def test_the_index_takes_no_upload_from_her_and_its_port_is_roots(make_hub):
    hub = make_hub(**{"packages.index": "local"})
    student_with_a_server(hub, "mallory")
    account = hub.prefix + "mallory"
    from mlworkshop.config import load_config

    port = index_port(load_config(hub.site))
    assert port < 1024
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/+api", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, hub.log()[-3000:]
        time.sleep(0.5)
    upload = (
        "import httpx; "
        "f = {'content': ('evil-1.0-py3-none-any.whl', b'PK')}; "
        "d = {':action': 'file_upload', 'name': 'evil', 'version': '1.0'}; "
        f"u = 'http://127.0.0.1:{port}/root/local/'; "
        "print(httpx.post(u, data=d, files=f).status_code, "
        "httpx.post(u, data=d, files=f, auth=('root', 'root')).status_code)"
    )
    tried = as_account(account, f'{sys.executable} -c "{upload}"')
    assert tried.returncode == 0, tried.stderr
    anonymous, guessed = map(int, tried.stdout.split())
    assert anonymous in (401, 403) and guessed in (401, 403), tried.stdout
    assert httpx.get(f"http://127.0.0.1:{port}/root/local/+simple/evil/").status_code == 404

    hub.stop()
    _end_index(hub.site)
    squat = as_account(
        account,
        f"{sys.executable} -c \"import socket; socket.socket().bind(('127.0.0.1', {port}))\"",
    )
    assert squat.returncode != 0 and "PermissionError" in squat.stderr, squat.stderr
