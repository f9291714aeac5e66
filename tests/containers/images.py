"""The container engine and the test image for tests/containers (and bench/container_spawn.py).

No registry is reachable here, so the test image is built from Debian's own packages: a
debootstrap base (`localhost/mlworkshop-deb-base:bookworm`, ~100 s once) and on top of it
Containerfile.test (JupyterHub's single-user server + JupyterLab in a venv, and mlworkshop's own
single-user server as its command). Both are cached by tag in podman's storage: the test image's
tag is a hash of its Containerfile and of mlworkshop's sources, so an edit rebuilds it (the pip
layer stays cached) and an unchanged one is reused across runs.

    python -m tests.containers.images      # set up podman and build what is missing, print the tags
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SETUP = REPO / "scripts" / "podman-setup.sh"
PODMAN_DIR = Path(os.environ.get("MLW_PODMAN_DIR", "/run/mlworkshop-podman"))
BASE_IMAGE = "localhost/mlworkshop-deb-base:bookworm"
CONTAINERFILE = HERE / "Containerfile.test"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
DEBIAN_MIRROR = os.environ.get("MLW_DEBIAN_MIRROR", "http://deb.debian.org/debian")


class EngineUnavailable(RuntimeError):
    """podman cannot run here; str() is the reason a test prints when it skips."""


def mlworkshop_sources() -> list[Path]:
    """What the image installs of mlworkshop (its single-user server is the image's command, as
    in deploy/docker/Dockerfile.user): the tracked package files, no caches."""
    files = [REPO / "pyproject.toml", REPO / "README.md"]
    files += sorted(
        path
        for path in (REPO / "src" / "mlworkshop").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )
    return files


def test_image_tag() -> str:
    """A hash of the Containerfile and of mlworkshop's sources: an edit of either rebuilds (the
    pip layer of JupyterHub and JupyterLab stays cached: only mlworkshop's layer is redone)."""
    digest = hashlib.sha256(CONTAINERFILE.read_bytes())
    for path in mlworkshop_sources():
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return f"localhost/mlworkshop-test-user:{digest.hexdigest()[:12]}"


def build_context(folder: Path) -> Path:
    """The Containerfile and a copy of mlworkshop's sources (under mlworkshop/) in `folder`."""
    shutil.copy(CONTAINERFILE, folder / CONTAINERFILE.name)
    for path in mlworkshop_sources():
        target = folder / "mlworkshop" / path.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return folder


def podman_env() -> dict[str, str]:
    env = dict(os.environ)
    conf = PODMAN_DIR / "containers.conf"
    if conf.exists():
        env["CONTAINERS_CONF"] = str(conf)
    return env


def podman(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    result = subprocess.run(["podman", *args], env=podman_env(), **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"podman {' '.join(args)} failed ({result.returncode}): {(result.stderr or '')[-2000:]}"
        )
    return result


def engine_url() -> str:
    """Install/configure podman and start its Docker-compatible socket; the socket's URL."""
    if os.geteuid() != 0 and shutil.which("podman") is None:
        raise EngineUnavailable(
            "podman is not installed and installing it needs root "
            "(apt-get install -y podman runc debootstrap)"
        )
    env = dict(os.environ, MLW_PODMAN_DIR=str(PODMAN_DIR))
    result = subprocess.run(
        ["bash", str(SETUP)], capture_output=True, text=True, env=env, timeout=900
    )
    if result.returncode != 0:
        raise EngineUnavailable(f"scripts/podman-setup.sh failed: {result.stderr.strip()[-1500:]}")
    url = result.stdout.strip().splitlines()[-1]
    # a container must actually start (kernel, cgroups, runtime): podman info is not enough
    probe = podman("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False)
    if probe.returncode != 0:
        raise EngineUnavailable(f"podman cannot run here: {probe.stderr.strip()[-800:]}")
    return url


def image_exists(tag: str) -> bool:
    return podman("image", "exists", tag, check=False).returncode == 0


def ensure_base(log=print) -> str:
    if image_exists(BASE_IMAGE):
        return BASE_IMAGE
    if shutil.which("debootstrap") is None:
        raise EngineUnavailable("debootstrap is missing (apt-get install -y debootstrap)")
    log(f"building {BASE_IMAGE} with debootstrap (about 100 s, once)")
    with tempfile.TemporaryDirectory(prefix="mlw-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                "bookworm",
                str(rootfs),
                DEBIAN_MIRROR,
            ],
            check=True,
            capture_output=True,
            timeout=1200,
        )
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE
        )
        podman(
            "import", "--change", 'CMD ["/bin/bash"]', "-", BASE_IMAGE, stdin=tar.stdout, text=False
        )
        tar.wait()
    return BASE_IMAGE


def ensure_test_image(log=print) -> str:
    """Build the test image if its tag is missing; return the tag."""
    tag = test_image_tag()
    if image_exists(tag):
        return tag
    ensure_base(log)
    log(f"building {tag} (pip installs jupyterhub + jupyterlab, a few minutes, once)")
    args = ["build", "--layers", "-t", tag, "-f", str(CONTAINERFILE)]
    if (
        HOST_CA.exists()
    ):  # a TLS-intercepting proxy: pip needs the host's CA, not baked into the image
        args += [
            "-v",
            f"{HOST_CA}:/host-ca.crt:ro",
            "--build-arg",
            "PIP_CERT_ARG=--cert /host-ca.crt",
        ]
    with tempfile.TemporaryDirectory(prefix="mlw-image-") as folder:
        podman(*args, str(build_context(Path(folder))), timeout=1800)
    return tag


if __name__ == "__main__":
    try:
        print("engine:", engine_url())
        print("image:", ensure_test_image(lambda m: print(m, file=sys.stderr)))
    except EngineUnavailable as exc:
        sys.exit(f"containers unavailable: {exc}")
