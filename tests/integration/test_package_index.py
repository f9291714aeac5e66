"""hub/package_index.py with a real devpi-server: seeded from a folder of wheels (and not sent the
same files again at the next start), a wheel pip finds there; a package from PyPI fetched through
it while the internet answers, then served by the same index started again inside a network
namespace with only loopback, where a name it never saw is a clear "no such package"."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mlworkshop.hub.package_index import INDEX, PASSWORD_ENV, upload

from .hubctl import free_port
from .netns import NetNS
from .wheels import make_wheel

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
PASSWORD = "index-test-password"


class Index:
    def __init__(self, serverdir: Path, seeds: list[Path]):
        self.serverdir, self.seeds = serverdir, seeds
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.runs = 0  # starts so far: each logs one line per seed
        self.log = serverdir.parent / "index.log"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def simple(self) -> str:
        return f"{self.base}/{INDEX}/+simple/"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "mlworkshop.hub.package_index"]
        cmd += ["--serverdir", str(self.serverdir), "--port", str(self.port)]
        for seed in self.seeds:
            cmd += ["--seed", str(seed)]
        return cmd

    def start(self, wrap=lambda cmd: cmd) -> None:
        env = {**os.environ, PASSWORD_ENV: PASSWORD}
        self.runs += 1
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                wrap(self.command()), env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_seeded(self, timeout: float = 120) -> str:
        """Until the runner logs that it took in every seed; returns the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text()
            if text.count("already there") >= self.runs * len(self.seeds):
                return text
            assert self.proc.poll() is None, text
            time.sleep(0.3)
        raise AssertionError(self.log.read_text())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


@pytest.fixture
def workdir():
    path = Path(tempfile.mkdtemp(prefix="mlw-index-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _pip_download(index_url: str, requirement: str, dest: Path, wrap=lambda c: c):
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir"]
    cmd += ["--index-url", index_url, "--dest", str(dest), requirement]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(wrap(cmd), env=env, capture_output=True, text=True, timeout=300)


def test_seeded_index_serves_and_caches_through(workdir):
    wheels = workdir / "wheels"
    make_wheel(wheels, "mlw-seed-demo", "1.0", "VALUE = 1\n")
    make_wheel(wheels, "mlw-seed-other", "0.1", "VALUE = 2\n")
    index = Index(workdir / "server", [wheels])
    index.start()
    try:
        log = index.wait_seeded()
        assert f"{wheels}: 2 uploaded, 0 already there" in log
        got = _pip_download(index.simple, "mlw-seed-demo", workdir / "dl")
        assert got.returncode == 0, got.stdout + got.stderr
        assert (workdir / "dl" / "mlw_seed_demo-1.0-py3-none-any.whl").exists()
        # the admin's add of the same files again: nothing sent twice
        assert upload(index.base, PASSWORD, sorted(wheels.iterdir())) == (0, 2)
        # through to PyPI while it answers (this machine reaches it): kept by the index
        online = _pip_download(index.simple, "six==1.17.0", workdir / "online")
        assert online.returncode == 0, online.stdout + online.stderr
    finally:
        index.stop()

    # the same index, started again in a room with no network
    with NetNS() as ns:
        index.start(wrap=ns.command)
        try:
            log = index.wait_seeded()
            assert f"{wheels}: 0 uploaded, 2 already there" in log
            again = _pip_download(index.simple, "six==1.17.0", workdir / "offline", ns.command)
            assert again.returncode == 0, again.stdout + again.stderr
            assert (workdir / "offline" / "six-1.17.0-py2.py3-none-any.whl").exists()
            missing = _pip_download(index.simple, "mlw-never-seen", workdir / "x", ns.command)
            assert missing.returncode != 0
            assert "No matching distribution found for mlw-never-seen" in missing.stderr
        finally:
            index.stop()
