"""`mlworkshop images save | load | list | build` against podman, with a tiny image made here."""

from __future__ import annotations

import io
import secrets
import subprocess
import tarfile

import pytest
from typer.testing import CliRunner

from mlworkshop.cli.images_cmd import ImagesError, archive_name, find_engine, images_app

from .images import podman

pytestmark = pytest.mark.containers


@pytest.fixture
def tiny_image(engine):
    """A one-file image (podman import), removed afterwards."""
    tag = f"localhost/mlw-tiny:{secrets.token_hex(3)}"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = b"hello from a tiny image\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    podman("import", "-", tag, input=buffer.getvalue(), text=False)
    yield tag
    podman("rmi", "-f", tag, check=False)


def run(*args: str):
    return CliRunner().invoke(images_app, list(args))


def test_engine_is_found():
    engine = find_engine()
    assert engine.name in ("docker", "podman")
    assert find_engine("podman").name == "podman"
    with pytest.raises(ImagesError, match="docker or podman"):
        find_engine("lxc")


def test_save_load_list_round_trip(tiny_image, tmp_path):
    saved = run("save", tiny_image, "--dir", str(tmp_path), "--engine", "podman")
    assert saved.exit_code == 0, saved.output
    archive = tmp_path / archive_name(tiny_image)
    assert archive.exists() and archive.stat().st_size > 0
    assert f"saved {tiny_image}" in saved.output
    assert not list(tmp_path.glob("*.partial"))

    podman("rmi", "-f", tiny_image)
    assert podman("image", "exists", tiny_image, check=False).returncode != 0
    loaded = run("load", "--dir", str(tmp_path), "--engine", "podman")
    assert loaded.exit_code == 0, loaded.output
    assert tiny_image in loaded.output
    assert podman("image", "exists", tiny_image, check=False).returncode == 0
    # the image is whole: its file is there
    out = subprocess.run(["tar", "-tzf", str(archive)], capture_output=True, text=True)
    assert out.returncode == 0

    listing = run("list", "--dir", str(tmp_path), "--engine", "podman")
    assert listing.exit_code == 0, listing.output
    assert "localhost/mlworkshop-user:latest" in listing.output and archive.name in listing.output


def test_clear_errors(engine, tmp_path):
    missing = run(
        "save", "localhost/mlworkshop-not-built:1", "--dir", str(tmp_path), "--engine", "podman"
    )
    assert isinstance(missing.exception, ImagesError)
    assert "mlworkshop images build" in str(missing.exception)

    empty = run("load", "--dir", str(tmp_path), "--engine", "podman")
    assert isinstance(empty.exception, ImagesError) and "No archives" in str(empty.exception)

    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not a gzip file")
    bad = run("load", str(broken), "--engine", "podman")
    assert isinstance(bad.exception, ImagesError) and "complete `images save` archive" in str(
        bad.exception
    )


def test_build_commands():
    result = run(
        "build", "user-cuda", "hub", "--build-arg", "CODE_SERVER_VERSION=4.90.0", "--dry-run"
    )
    assert result.exit_code == 0, result.output
    assert "deploy/docker/Dockerfile.user -t localhost/mlworkshop-user:cuda" in result.output
    assert "--build-arg VARIANT=cuda --build-arg CODE_SERVER_VERSION=4.90.0" in result.output
    assert "deploy/docker/Dockerfile.hub -t localhost/mlworkshop-hub:latest" in result.output
    bad = run("build", "gpu", "--dry-run")
    assert isinstance(bad.exception, ImagesError) and "unknown target" in str(bad.exception)
