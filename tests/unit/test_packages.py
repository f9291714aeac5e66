"""hub/packages.py's mapping of the packages section (students' environment, the index service)
and mlworkshop.pysite's path rules, in a real interpreter of the venv."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from pydantic import ValidationError

from mlworkshop import pysite
from mlworkshop.config import MLWorkshopConfig
from mlworkshop.hub.packages import (
    INDEX_SERVICE,
    PACKAGES_ACCOUNT,
    SECRET,
    index_port,
    shared_site_packages,
)
from mlworkshop.hub.service_accounts import isolating

from .test_configure import build, service, spawner_value


def test_default_students_get_their_own_installs_and_the_shared_folder(tmp_path):
    c, site = build(tmp_path)
    env = spawner_value(c, "environment")
    assert env[pysite.USER_SITE_ENV] == "1"
    assert env[pysite.SHARED_ENV] == str(shared_site_packages(site))
    assert "PIP_INDEX_URL" not in env
    assert service(c, INDEX_SERVICE) is None


def test_local_index_is_a_service_and_students_pip_points_at_it(tmp_path):
    site_dir = tmp_path / "site"
    c, site = build(
        tmp_path, packages={"index": "local", "seed": ["/srv/b/wheels"], "offline": True}
    )
    port = index_port(MLWorkshopConfig())
    env = spawner_value(c, "environment")
    assert env["PIP_INDEX_URL"] == f"http://127.0.0.1:{port}/root/local/+simple/"
    assert env["PIP_TRUSTED_HOST"] == f"127.0.0.1:{port}"
    svc = service(c, INDEX_SERVICE)
    cmd = svc["command"]
    assert cmd[cmd.index("--serverdir") + 1] == str(site_dir / "packages" / "index")
    assert cmd[cmd.index("--seed") + 1] == "/srv/b/wheels" and "--offline" in cmd
    assert svc["environment"] == {"MLW_INDEX_PASSWORD": site.read_secret(SECRET)}
    if isolating():  # a root hub: as its own account, on a port below 1024
        assert f"--reuid={PACKAGES_ACCOUNT}" in cmd and port < 1024


def test_admin_environment_wins(tmp_path):
    c, _ = build(tmp_path, spawner={"environment": {"PIP_INDEX_URL": "http://mirror/simple"}})
    assert spawner_value(c, "environment")["PIP_INDEX_URL"] == "http://mirror/simple"


def test_no_user_installs(tmp_path):
    c, _ = build(tmp_path, packages={"user_installs": False})
    assert pysite.USER_SITE_ENV not in spawner_value(c, "environment")


def test_seed_must_be_absolute():
    with pytest.raises(ValidationError, match="must be an absolute path"):
        MLWorkshopConfig.model_validate({"packages": {"seed": ["wheels"]}})


def _paths(env: dict, home) -> dict:
    """sys.path and ENABLE_USER_SITE of a fresh venv interpreter that applies pysite itself (as
    the .pth does), run as nobody when we are root (root never gets a user site)."""
    code = (
        "import json, site, sys; from mlworkshop import pysite; pysite.apply(); "
        "print(json.dumps({'path': sys.path, 'user': bool(site.ENABLE_USER_SITE)}))"
    )
    full = {"PATH": os.environ["PATH"], "HOME": str(home), **env}
    cmd = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]
    out = subprocess.run(cmd, env=full, capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def open_dir():
    """A folder another account can read (pytest's tmp_path is root's 0700)."""
    path = tempfile.mkdtemp(prefix="mlw-pysite-")
    os.chmod(path, 0o755)
    yield Path(path)
    shutil.rmtree(path)


def test_user_site_goes_before_the_venv_and_shared_after(open_dir):
    tmp_path = open_dir
    home = tmp_path / "home"
    user_site = (
        home / ".local" / "lib" / "python{}.{}".format(*sys.version_info[:2]) / "site-packages"
    )
    user_site.mkdir(parents=True)
    shared = tmp_path / "shared"
    shared.mkdir()
    got = _paths({pysite.USER_SITE_ENV: "1", pysite.SHARED_ENV: str(shared)}, home)
    venv = next(
        i for i, p in enumerate(got["path"]) if p.startswith(sys.prefix) and "site-packages" in p
    )
    assert got["user"] is True
    assert got["path"].index(str(user_site)) < venv < got["path"].index(str(shared))
    off = _paths({}, home)
    assert str(user_site) not in off["path"] and str(shared) not in off["path"]
