"""Fixtures for tests on real containers: podman's Docker-compatible socket, the test image built
from Debian's packages (cached by tag), and the real-hub harness of tests/integration.

Everything here skips, with the reason, only when podman cannot run on this machine.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from tests.integration.conftest import make_hub  # noqa: F401 - the real-hub fixture, reused

from .images import EngineUnavailable, engine_url, ensure_test_image

ASCEND_CONTROL = ("/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc")
ASCEND_DRIVER_DIRS = ("/usr/local/Ascend/driver", "/usr/local/dcmi")
ASCEND_DRIVER_FILES = ("/usr/local/bin/npu-smi", "/etc/ascend_install.info")


@pytest.fixture(scope="session")
def engine() -> str:
    """The URL of podman's Docker-compatible socket (scripts/podman-setup.sh starts it)."""
    try:
        return engine_url()
    except EngineUnavailable as exc:
        pytest.skip(f"podman cannot run here: {exc}")


@pytest.fixture(scope="session")
def test_image(engine) -> str:
    try:
        return ensure_test_image(lambda message: print(message))
    except EngineUnavailable as exc:
        pytest.skip(f"no test image: {exc}")


@pytest.fixture(scope="session")
def client(engine):
    import docker

    c = docker.APIClient(base_url=engine, version="auto", timeout=120)
    yield c
    c.close()


@pytest.fixture
def cleanup_containers(client):
    """Removes, after the test, every container labelled with the sites registered here."""
    sites: list[str] = []
    yield sites.append
    for site in sites:
        for c in client.containers(all=True, filters={"label": f"org.mlworkshop.site={site}"}):
            client.remove_container(c["Id"], force=True)


@pytest.fixture
def fake_ascend(request):
    """Device files and driver folders an Ascend host has, for chips `indices`, made where they
    are missing and removed afterwards: the container spec and the container itself get real
    paths to map. The device numbers are from the range Linux leaves for local use (major 240),
    distinct per file, so the engine reports each one by its own path. Nothing that exists
    already is touched."""
    made: list[Path] = []

    def make(indices):
        paths = [f"/dev/davinci{i}" for i in indices] + list(ASCEND_CONTROL)
        for minor, path in enumerate(paths):
            if not os.path.exists(path):
                os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(240, 100 + minor))
                made.append(Path(path))
        for path in ASCEND_DRIVER_DIRS:
            if not os.path.exists(path):
                top = Path(path)
                while not top.parent.exists():
                    top = top.parent
                Path(path).mkdir(parents=True)
                made.append(top if top != Path(path) else Path(path))
        for path in ASCEND_DRIVER_FILES:
            if not os.path.exists(path):
                Path(path).write_text("fake, made by tests/containers\n")
                made.append(Path(path))

    if os.geteuid() != 0:
        pytest.skip("making device files needs root")
    yield make
    for path in reversed(made):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
