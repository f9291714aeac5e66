"""`mlworkshop images load --containerd`: an offline Kubernetes node's images go into containerd's
k8s.io namespace (where the kubelet looks), through `ctr images import`. A private containerd is
started here (its own socket, root and state under tmp), a tiny image saved by `images save` is
imported into it, and a containerd that is not there is said in a sentence."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
from typer.testing import CliRunner

from mlworkshop.cli.images_cmd import archive_name, images_app

from .test_images_cli import tiny_image  # noqa: F401 - the one-file image fixture

pytestmark = pytest.mark.containers


@pytest.fixture
def containerd(tmp_path):
    """A containerd of our own (the CRI plugin off: no kubelet talks to it); its socket."""
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        pytest.skip("containerd and ctr are not installed (Debian: containerd)")
    base = tmp_path / "ctrd"
    sock = base / "containerd.sock"
    config = base / "config.toml"
    base.mkdir()
    config.write_text('version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n')
    log = open(base / "log", "w")
    proc = subprocess.Popen(
        ["containerd", "--config", str(config), "--address", str(sock),
         "--root", str(base / "root"), "--state", str(base / "state")],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"containerd exited: {(base / 'log').read_text()[-2000:]}")
            ready = subprocess.run(["ctr", "--address", str(sock), "version"], capture_output=True)
            if ready.returncode == 0:
                break
            time.sleep(0.2)
        else:
            pytest.fail("containerd did not answer within 60 s")
        yield sock
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def run(*args: str):
    return CliRunner().invoke(images_app, list(args))


def test_load_into_containerd(tiny_image, containerd, tmp_path):  # noqa: F811
    saved = run("save", tiny_image, "--dir", str(tmp_path), "--engine", "podman")
    assert saved.exit_code == 0, saved.output
    ctr = f"ctr --address {containerd}"
    loaded = run("load", str(tmp_path / archive_name(tiny_image)), "--containerd", "--ctr", ctr)
    assert loaded.exit_code == 0, loaded.output
    assert tiny_image in loaded.output
    listing = subprocess.run(
        ["ctr", "--address", str(containerd), "-n", "k8s.io", "images", "ls", "-q"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert tiny_image in listing.stdout.split()


def test_no_containerd_is_said(tiny_image, tmp_path):  # noqa: F811
    if shutil.which("ctr") is None:  # scripts/system-deps.sh installs it; by hand it may be missing
        pytest.skip("ctr is not installed (Debian: containerd)")
    saved = run("save", tiny_image, "--dir", str(tmp_path), "--engine", "podman")
    assert saved.exit_code == 0, saved.output
    ctr = f"ctr --address {tmp_path / 'no.sock'} --connect-timeout 2s"
    result = run("load", "--dir", str(tmp_path), "--containerd", "--ctr", ctr)
    assert result.exit_code != 0
    assert "images import` failed" in str(result.exception)
    assert "Is containerd running" in str(result.exception)
