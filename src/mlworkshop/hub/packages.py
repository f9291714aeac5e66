"""Packages for students: the local index as a hub service (hub/package_index.py runs it), the
environment students' servers get (mlworkshop.pysite reads it), and the admin's shared folder.

<site>/packages/shared/        root's, 0755: `mlworkshop packages install` (pip --prefix) fills
                               its lib/pythonX.Y/site-packages, which every server has on its path
                               after the hub's venv; students read it and cannot change it.
<site>/packages/index/         the devpi server folder, _mlw-pkgs's (0700) under a root hub.

`server_environment` and `index_services` only compute values (hub/configure.py sets them);
`prepare_packages` makes the folders and the account when a hub starts (`mlworkshop up`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .. import pysite
from ..config import MLWorkshopConfig
from ..config.packages import ROOT_INDEX_PORT, USER_INDEX_PORT
from ..site import Site
from .package_index import INDEX, PASSWORD_ENV
from .service_accounts import ensure_service_account, isolating, setpriv_command

PACKAGES_ACCOUNT = "_mlw-pkgs"
INDEX_SERVICE = "package-index"
SECRET = "package_index_password"


class PackagesError(RuntimeError):
    """str() says what failed and what a lab admin can do."""


def packages_dir(site: Site) -> Path:
    return site.root / "packages"


def shared_prefix(site: Site) -> Path:
    return packages_dir(site) / "shared"


def shared_site_packages(site: Site) -> Path:
    return Path(pysite.shared_site_packages(str(shared_prefix(site))))


def index_dir(site: Site) -> Path:
    return packages_dir(site) / "index"


def index_port(cfg: MLWorkshopConfig) -> int:
    return cfg.packages.port or (ROOT_INDEX_PORT if isolating() else USER_INDEX_PORT)


def index_base(cfg: MLWorkshopConfig) -> str:
    return f"http://127.0.0.1:{index_port(cfg)}"


def index_url(cfg: MLWorkshopConfig) -> str:
    return f"{index_base(cfg)}/{INDEX}/+simple/"


def server_environment(cfg: MLWorkshopConfig, site: Site) -> dict[str, str]:
    """What every student's server (and so its kernels, terminals and pip) gets."""
    env = {pysite.SHARED_ENV: str(shared_site_packages(site))}
    if cfg.packages.user_installs:
        env[pysite.USER_SITE_ENV] = "1"
    if cfg.packages.index == "local":
        env["PIP_INDEX_URL"] = index_url(cfg)
        env["PIP_TRUSTED_HOST"] = f"127.0.0.1:{index_port(cfg)}"  # plain http on loopback
    return env


def index_services(cfg: MLWorkshopConfig, site: Site) -> list[dict]:
    """The package index as a hub-managed service (nothing with packages.index: pypi)."""
    if cfg.packages.index != "local":
        return []
    cmd = [
        sys.executable,
        "-m",
        "mlworkshop.hub.package_index",
        "--serverdir",
        str(index_dir(site)),
        "--port",
        str(index_port(cfg)),
    ]
    for seed in cfg.packages.seed:
        cmd += ["--seed", str(seed)]
    if cfg.packages.offline:
        cmd.append("--offline")
    return [
        {
            "name": INDEX_SERVICE,
            # a root hub: as its own account, keeping only the right to bind a port below 1024
            "command": setpriv_command(PACKAGES_ACCOUNT, cmd) if isolating() else cmd,
            "cwd": "/",
            "environment": {PASSWORD_ENV: site.read_secret(SECRET)},
        }
    ]


def prepare_packages(site: Site, cfg: MLWorkshopConfig) -> list[str]:
    """Before a hub starts: the shared folder (root's, 0755), the venv's start-up hook, and with
    packages.index: local the index's account, folder and password. Returns what it did."""
    done: list[str] = []
    folder = packages_dir(site)
    for path in (folder, shared_prefix(site)):
        if not path.exists():
            path.mkdir(mode=0o755)
            done.append(f"made {path}")
    shared_site_packages(site).mkdir(parents=True, exist_ok=True)
    try:
        line = pysite.ensure_pth()
        if line:
            done.append(line)
    except OSError as exc:
        done.append(
            f"warning: {pysite.pth_path()} could not be written ({exc.strerror}): students' own "
            "and shared packages work only in servers forked by the hub. Start the hub as the "
            "venv's owner once."
        )
    if cfg.packages.index != "local":
        return done
    site.secret(SECRET)
    index = index_dir(site)
    if not index.exists():
        index.mkdir(mode=0o700)
        done.append(f"made {index}")
    if isolating():
        account = ensure_service_account(PACKAGES_ACCOUNT)
        st = index.lstat()
        if (st.st_uid, st.st_gid) != (account.uid, account.gid):
            os.chown(index, account.uid, account.gid, follow_symlinks=False)
        os.chmod(index, 0o700, follow_symlinks=False)
    return done


def shared_constraints() -> list[str]:
    """The hub's own environment, pinned: a shared install may add packages, never change these."""
    import importlib.metadata

    pins = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() != "mlworkshop":
            pins[name.lower()] = f"{name}=={dist.version}"
    return sorted(pins.values())


def install_shared(
    site: Site, cfg: MLWorkshopConfig, requirements: list[str], index: str | None = None
) -> str:
    """`pip install --prefix <site>/packages/shared` as root (umask 022: everyone reads, only root
    writes), constrained to the hub's own versions. Returns pip's last line."""
    prefix = shared_prefix(site)
    target = shared_site_packages(site)
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(packages_dir(site), 0o755)
    os.chmod(prefix, 0o755)
    constraints = packages_dir(site) / ".hub-constraints.txt"
    constraints.write_text("\n".join(shared_constraints()) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["PYTHONPATH"] = str(target)  # pip sees what the folder already has
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if index:
        env["PIP_INDEX_URL"] = index
        if index.startswith("http://"):
            env["PIP_TRUSTED_HOST"] = index.split("/")[2]
    cmd = [sys.executable, "-m", "pip", "install", "--prefix", str(prefix)]
    cmd += ["--constraint", str(constraints), *requirements]
    old = os.umask(0o022)
    try:
        result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    finally:
        os.umask(old)
    if result.returncode != 0:
        tail = result.stderr.strip()[-2000:] or result.stdout.strip()[-2000:]
        hint = ""
        if "ResolutionImpossible" in tail or "conflict" in tail.lower():
            hint = (
                " A shared package may not change a package of the hub's own environment: "
                "pick a version that works with it."
            )
        raise PackagesError(f"pip could not install {' '.join(requirements)}.{hint}\n{tail}")
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return lines[-1] if lines else "nothing to do"
