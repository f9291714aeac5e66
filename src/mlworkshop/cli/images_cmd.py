"""`mlworkshop images build | save | load | list`: the container images, also for machines
without internet.

Uses whichever engine is here: Docker when its daemon answers, else podman (`--engine` or
$MLW_ENGINE to choose). Offline copies are `images/<name>.tar.gz` (gzip of `docker save`), written
and read with a progress bar; `load` streams them back into the engine.

Wire it with `app.add_typer(images_app, name="images")` in cli/main.py.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

REPO = Path(__file__).resolve().parents[3]
DOCKER_DIR = REPO / "deploy" / "docker"
PODMAN_CONF = Path("/run/mlworkshop-podman/containers.conf")  # written by scripts/podman-setup.sh
CHUNK = 1 << 20

# what `images build` can make: name -> (Dockerfile, tag, build args)
TARGETS: dict[str, tuple[str, str, dict[str, str]]] = {
    "user": ("Dockerfile.user", "localhost/mlworkshop-user:latest", {"VARIANT": "cpu"}),
    "user-cuda": ("Dockerfile.user", "localhost/mlworkshop-user:cuda", {"VARIANT": "cuda"}),
    "user-ascend": ("Dockerfile.user", "localhost/mlworkshop-user:ascend", {"VARIANT": "ascend"}),
    # TensorFlow instead of PyTorch (Jupyter Docker Stacks' tensorflow-notebook), CPU and CUDA
    "user-tensorflow": (
        "Dockerfile.user",
        "localhost/mlworkshop-user:tensorflow",
        {"VARIANT": "tensorflow"},
    ),
    "user-tensorflow-cuda": (
        "Dockerfile.user",
        "localhost/mlworkshop-user:tensorflow-cuda",
        {"VARIANT": "tensorflow-cuda"},
    ),
    "hub": ("Dockerfile.hub", "localhost/mlworkshop-hub:latest", {}),
}

images_app = typer.Typer(
    help="Build, save, load and list the container images (offline sites too).",
    no_args_is_help=True,
)
# piped or logged (no terminal): wide enough that an image's row stays one line to read and grep
# (at 80 columns a long name wrapped as soon as a second long one was listed)
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)

EngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help="docker or podman. Default: $MLW_ENGINE, else Docker if its daemon answers, else podman.",
    ),
]
DirOpt = Annotated[Path, typer.Option("--dir", help="Folder of the offline copies.")]
SiteOpt = Annotated[
    Path | None,
    typer.Option(
        "--site",
        help="Site folder whose spawner.docker.images are meant. Default: as for every command.",
    ),
]


class ImagesError(RuntimeError):
    """A message for the admin (`mlworkshop` prints it and exits with status 2)."""


@dataclass(frozen=True)
class Engine:
    name: str  # docker | podman
    path: str

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.name == "podman" and "CONTAINERS_CONF" not in env and PODMAN_CONF.exists():
            env["CONTAINERS_CONF"] = str(PODMAN_CONF)
        return env

    def run(self, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        result = subprocess.run([self.path, *args], env=self.env(), **kwargs)
        if check and result.returncode != 0:
            raise ImagesError(explain(self, args, result.stderr or ""))
        return result

    def popen(self, *args: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen([self.path, *args], env=self.env(), **kwargs)


def explain(engine: Engine, args: tuple[str, ...], stderr: str) -> str:
    text = stderr.strip()[-1500:]
    low = text.lower()
    what = f"`{engine.name} {' '.join(args[:2])}` failed"
    if "no space left" in low:
        return f"{what}: no space left on device. Free space (`{engine.name} system prune`) and try again.\n{text}"
    if (
        "cannot connect" in low
        or "is the docker daemon running" in low
        or "connection refused" in low
    ):
        return f"{what}: the {engine.name} engine is not reachable. Start it (see deploy/docker/README.md).\n{text}"
    return f"{what}:\n{text}"


def _answers(path: str, name: str) -> bool:
    env = Engine(name, path).env()
    try:
        return (
            subprocess.run([path, "info"], capture_output=True, env=env, timeout=20).returncode == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_engine(choice: str | None = None) -> Engine:
    """The engine to use: the one asked for, else Docker if its daemon answers, else podman."""
    choice = choice or os.environ.get("MLW_ENGINE") or None
    if choice is not None:
        if choice not in ("docker", "podman"):
            raise ImagesError(f"--engine must be docker or podman, not {choice!r}")
        path = shutil.which(choice)
        if path is None:
            raise ImagesError(
                f"{choice} is not installed (podman: `bash scripts/podman-setup.sh`)."
            )
        return Engine(choice, path)
    docker, podman = shutil.which("docker"), shutil.which("podman")
    if docker and _answers(docker, "docker"):
        return Engine("docker", docker)
    if podman:
        return Engine("podman", podman)
    if docker:
        raise ImagesError(
            "docker is installed but its daemon does not answer, and podman is not installed. "
            "Start Docker (`systemctl start docker`) or install podman (`bash scripts/podman-setup.sh`)."
        )
    raise ImagesError(
        "Neither docker nor podman is installed. Install one: `bash scripts/podman-setup.sh` "
        "(podman, as root) or Docker's own packages."
    )


def archive_name(image: str) -> str:
    """localhost/mlworkshop-user:cuda -> mlworkshop-user_cuda.tar.gz"""
    last = image.split("/")[-1]
    name, _, tag = last.partition(":")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{name}_{tag or 'latest'}")
    return f"{safe}.tar.gz"


def image_info(engine: Engine, image: str) -> dict | None:
    result = engine.run("image", "inspect", image, check=False)
    if result.returncode != 0:
        return None
    data = json.loads(result.stdout or "[]")
    return data[0] if data else None


def configured_images(site: Path | None) -> list[tuple[str, str]]:
    """(name, image) from the site's spawner.docker.images, or the defaults without a site."""
    from ..config import load_config
    from ..config.docker import DEFAULT_IMAGES
    from ..site import resolve_site

    try:
        s = resolve_site(site)
        if s.config_file.exists():
            return [(i.name, i.image) for i in load_config(s.root).spawner.docker.images]
    except Exception:  # noqa: BLE001 - a broken config must not stop an image listing
        pass
    return [(i.name, i.image) for i in DEFAULT_IMAGES]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def save_image(engine: Engine, image: str, target: Path, show: bool = True) -> int:
    """`engine save image | gzip > target` with a progress bar; returns the compressed size."""
    info = image_info(engine, image)
    if info is None:
        raise ImagesError(
            f"{image} is not in {engine.name}'s storage: build it (`mlworkshop images build`) "
            "or load it (`mlworkshop images load`) first."
        )
    total = int(info.get("Size") or 0) or None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    args = (
        ["save", image]
        if engine.name == "docker"
        else ["save", "--format", "docker-archive", image]
    )
    proc = engine.popen(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with _progress() as bar, gzip.open(partial, "wb", compresslevel=3) as sink:
            task = bar.add_task(f"save {image}", total=total, visible=show)
            while chunk := proc.stdout.read(CHUNK):
                sink.write(chunk)
                bar.advance(task, len(chunk))
            bar.update(task, total=bar.tasks[0].completed)
        stderr = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0:
            raise ImagesError(explain(engine, tuple(args), stderr))
    except OSError as exc:
        proc.kill()
        partial.unlink(missing_ok=True)
        raise ImagesError(
            f"Writing {target} failed: {exc}. Free space there or pick another --dir."
        ) from None
    except BaseException:
        proc.kill()
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    return target.stat().st_size


def load_archive(engine: Engine, archive: Path, show: bool = True) -> list[str]:
    """gunzip archive | engine load, with a progress bar over the compressed file; the images loaded."""
    proc = engine.popen(
        "load", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        with _progress() as bar, open(archive, "rb") as raw:
            task = bar.add_task(f"load {archive.name}", total=archive.stat().st_size, visible=show)
            with gzip.GzipFile(fileobj=raw) as source:
                last = 0
                while chunk := source.read(CHUNK):
                    proc.stdin.write(chunk)
                    bar.advance(task, raw.tell() - last)
                    last = raw.tell()
        proc.stdin.close()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        proc.kill()
        proc.wait()
        raise ImagesError(
            f"{archive} could not be read ({exc}): is it a complete `images save` archive?"
        ) from None
    stdout = proc.stdout.read().decode(errors="replace")
    stderr = proc.stderr.read().decode(errors="replace")
    if proc.wait() != 0:
        raise ImagesError(explain(engine, ("load", str(archive)), stderr))
    return re.findall(r"Loaded image(?:\(s\))?(?: ID)?:\s*(\S+)", stdout + "\n" + stderr)


def build_command(
    engine: Engine, target: str, build_args: dict[str, str], tag: str | None = None
) -> list[str]:
    dockerfile, default_tag, args = TARGETS[target]
    cmd = [engine.path, "build", "-f", str(DOCKER_DIR / dockerfile), "-t", tag or default_tag]
    for key, value in {**args, **build_args}.items():
        cmd += ["--build-arg", f"{key}={value}"]
    cmd.append(str(REPO))
    return cmd


@images_app.command("build")
def build(
    targets: Annotated[
        list[str] | None,
        typer.Argument(help=f"What to build: {', '.join(TARGETS)}. Default: user hub."),
    ] = None,
    build_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--build-arg", help="KEY=VALUE passed to the build (e.g. CANN_VERSION=8.0.RC3)."
        ),
    ] = None,
    tag: Annotated[
        str | None, typer.Option("--tag", help="Tag for a single target instead of its default.")
    ] = None,
    engine: EngineOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the build commands only.")
    ] = False,
) -> None:
    """Build the images from deploy/docker/ (the bases come from a registry: needs internet)."""
    targets = targets or ["user", "hub"]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise ImagesError(
            f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}"
        )
    if tag and len(targets) != 1:
        raise ImagesError("--tag names one image: give exactly one target with it")
    args: dict[str, str] = {}
    for item in build_arg or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ImagesError(f"--build-arg {item!r} must look like KEY=VALUE")
        args[key] = value
    eng = find_engine(engine) if not dry_run else Engine(engine or "docker", engine or "docker")
    for target in targets:
        cmd = build_command(eng, target, args, tag)
        out.print(" ".join(cmd), highlight=False, soft_wrap=True)
        if dry_run:
            continue
        result = subprocess.run(cmd, env=eng.env())
        if result.returncode != 0:
            raise ImagesError(
                f"building {target} failed (exit {result.returncode}); the output above says why."
            )
        out.print(f"built {tag or TARGETS[target][1]}")


@images_app.command("save")
def save(
    images: Annotated[
        list[str] | None,
        typer.Argument(help="Images to save. Default: spawner.docker.images and the hub image."),
    ] = None,
    directory: DirOpt = Path("images"),
    engine: EngineOpt = None,
    site: SiteOpt = None,
) -> None:
    """Write images to <dir>/<name>.tar.gz for machines without internet."""
    eng = find_engine(engine)
    wanted = images or [image for _, image in configured_images(site)] + [TARGETS["hub"][1]]
    missing = [i for i in wanted if image_info(eng, i) is None]
    if missing and not images:  # defaults: save what exists, say what does not
        for image in missing:
            err.print(
                f"skipped {image}: not in {eng.name}'s storage (build it with `mlworkshop images build`)"
            )
        wanted = [i for i in wanted if i not in missing]
    elif missing:
        raise ImagesError(
            f"not in {eng.name}'s storage: {', '.join(missing)}. "
            "Build them (`mlworkshop images build`) or load them first."
        )
    if not wanted:
        raise ImagesError("No image to save: build them first (`mlworkshop images build`).")
    for image in wanted:
        target = directory / archive_name(image)
        size = save_image(eng, image, target)
        out.print(f"saved {image} -> {target} ({size / 1e6:.1f} MB)", highlight=False)


def containerd_import(ctr: list[str], archive: Path, show: bool = True) -> list[str]:
    """gunzip archive | ctr -n k8s.io images import -: an offline Kubernetes node's containerd
    (the kubelet's images live in the k8s.io namespace); the images imported."""
    if shutil.which(ctr[0]) is None:
        raise ImagesError(
            f"{ctr[0]} is not installed here. Run this on the Kubernetes node itself (containerd's "
            "ctr; MicroK8s: --ctr 'microk8s ctr'), once on every node."
        )
    proc = subprocess.Popen(
        [*ctr, "-n", "k8s.io", "images", "import", "--all-platforms", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        with _progress() as bar, open(archive, "rb") as raw:
            task = bar.add_task(
                f"import {archive.name}", total=archive.stat().st_size, visible=show
            )
            with gzip.GzipFile(fileobj=raw) as source:
                last = 0
                while chunk := source.read(CHUNK):
                    proc.stdin.write(chunk)
                    bar.advance(task, raw.tell() - last)
                    last = raw.tell()
        proc.stdin.close()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        proc.kill()
        proc.wait()
        raise ImagesError(
            f"{archive} could not be imported ({exc}): is it a complete `images save` archive, "
            "and does containerd run (`ctr version`)?"
        ) from None
    stdout = proc.stdout.read().decode(errors="replace")
    stderr = proc.stderr.read().decode(errors="replace")
    if proc.wait() != 0:
        raise ImagesError(
            f"`{' '.join(ctr)} -n k8s.io images import` failed for {archive}: "
            f"{stderr.strip()[-800:] or 'no message'}. Is containerd running, and are you root?"
        )
    return re.findall(r"unpacking (\S+) \(", stdout + "\n" + stderr)


@images_app.command("load")
def load(
    archives: Annotated[
        list[Path] | None, typer.Argument(help="Archives to load. Default: <dir>/*.tar.gz.")
    ] = None,
    directory: DirOpt = Path("images"),
    engine: EngineOpt = None,
    containerd: Annotated[
        bool,
        typer.Option(
            "--containerd",
            help="Import into this Kubernetes node's containerd (ctr -n k8s.io images import) "
            "instead of Docker/podman: offline clusters, once on every node.",
        ),
    ] = False,
    ctr: Annotated[
        str,
        typer.Option("--ctr", help="The ctr command, e.g. 'microk8s ctr' or 'ctr -a SOCKET'."),
    ] = "ctr",
) -> None:
    """Load images saved by `images save` into this machine's engine (or containerd)."""
    eng = None if containerd else find_engine(engine)
    files = archives or sorted(directory.glob("*.tar.gz"))
    if not files:
        raise ImagesError(
            f"No archives in {directory}/ (copy the images/*.tar.gz made by `mlworkshop images save`)."
        )
    for archive in files:
        if not archive.exists():
            raise ImagesError(f"{archive} does not exist")
        if eng is None:
            loaded = containerd_import(shlex.split(ctr), archive)
        else:
            loaded = load_archive(eng, archive)
        out.print(f"loaded {archive} -> {', '.join(loaded) or 'ok'}", highlight=False)


@images_app.command("list")
def list_images(
    directory: DirOpt = Path("images"),
    engine: EngineOpt = None,
    site: SiteOpt = None,
) -> None:
    """The configured images: present in the engine or not, and the offline copies in <dir>/."""
    eng = find_engine(engine)
    table = Table(title=f"images ({eng.name})")
    for col in ("name", "image", "in engine", "size", "offline copy"):
        table.add_column(col)
    rows = configured_images(site) + [("hub", TARGETS["hub"][1])]
    for name, image in rows:
        info = image_info(eng, image)
        archive = directory / archive_name(image)
        table.add_row(
            name,
            image,
            "yes" if info else "no",
            f"{int(info.get('Size') or 0) / 1e6:.0f} MB" if info else "-",
            f"{archive} ({archive.stat().st_size / 1e6:.0f} MB)" if archive.exists() else "-",
        )
    out.print(table)
    listed = eng.run("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout.split()
    known = {image for _, image in rows}
    for image in sorted(set(listed)):
        if "mlworkshop" in image and image not in known:
            out.print(f"also in {eng.name}: {image}", highlight=False)
    extra = sorted(
        p for p in directory.glob("*.tar.gz") if p.name not in {archive_name(i) for _, i in rows}
    )
    for path in extra:
        out.print(
            f"also in {directory}/: {path.name} ({path.stat().st_size / 1e6:.0f} MB)",
            highlight=False,
        )


@images_app.callback()
def _callback() -> None:
    """Build, save, load and list the container images."""
