"""`mlworkshop bundle create OUT`: everything an offline room needs, made on a connected machine.

    OUT/manifest.json      format, target (Python, architecture), extras, pins, sha256 + size per file
    OUT/requirements.txt   the resolved set, name==version, one a line (the install's constraints)
    OUT/wheels/            a wheel for each pin, for this Python and platform (sdists built here)
    OUT/npm/               package.json, package-lock.json and an npm cache holding the locked tree
    OUT/lessons/           the lesson notebooks (with the lessons extra)
    OUT/images/            container images (`images save` archives), when asked for

The resolved set is pip's own resolution of this checkout with the chosen extras, for the Python
that runs this command, constrained to the versions installed in its environment (the ones this
hub runs and was tested with), unless --fresh asks for the newest allowed. It is written to
OUT.partial and renamed to OUT when complete, so a failed run leaves no half bundle behind.

ops/bundle_install.py installs it (standard library only: it runs before there is a venv).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .. import __version__
from .bundle_install import (
    FORMAT,
    IMAGES,
    LESSONS,
    MANIFEST,
    NPM,
    NPM_CACHE,
    REQUIREMENTS,
    WHEELS,
    BundleError,
    Target,
    sha256,
)

REPO = Path(__file__).resolve().parents[3]
EXTRAS = ("lessons", "gpu")
# What an editable install of the checkout needs to build it (pyproject's build-system.requires).
BUILD_REQUIREMENTS = ("setuptools>=68", "wheel")


@dataclass
class Created:
    path: Path
    pins: list[str]
    files: int
    size: int
    seconds: dict[str, float] = field(default_factory=dict)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pip(
    args: list[str], what: str, cwd: Path | None = None, extra_index_urls: list[str] = ()
) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    for url in extra_index_urls:
        cmd += ["--extra-index-url", url]
    env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr.strip() or result.stdout.strip())[-2500:]
        hint = ""
        if (
            "ConnectionError" in tail
            or "Failed to establish" in tail
            or "Temporary failure" in tail
        ):
            hint = (
                " This machine cannot reach the package index: make the bundle on a connected one."
            )
        raise BundleError(f"{what} failed (exit {result.returncode}).{hint}\n{tail}")


def installed_constraints(project_name: str = "mlworkshop") -> list[str]:
    """name==version of every distribution in this environment but the project itself."""
    pins = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if not name or _canonical(name) == project_name:
            continue
        pins[_canonical(name)] = f"{_canonical(name)}=={dist.version}"
    return sorted(pins.values())


def resolve(
    project: Path, extras: list[str], work: Path, fresh: bool, extra_index_urls: list[str] = ()
) -> list[str]:
    """pip's resolution of the checkout with `extras` (+ what building it needs): name==version."""
    spec = f"{project}[{','.join(extras)}]" if extras else str(project)
    args = ["install", "--dry-run", "--ignore-installed", "--quiet", "--report"]
    args += [str(work / "report.json"), spec, *BUILD_REQUIREMENTS]
    if not fresh:
        constraints = work / "constraints.txt"
        constraints.write_text("\n".join(installed_constraints()) + "\n")
        args += ["--constraint", str(constraints)]
    what = "Resolving the dependencies" + (
        "" if fresh else " at this environment's versions (--fresh resolves the newest allowed)"
    )
    _pip(args, what, extra_index_urls=extra_index_urls)
    report = json.loads((work / "report.json").read_text())
    pins = []
    for item in report["install"]:
        if "dir_info" in item.get("download_info", {}):
            continue  # the checkout itself: installed from the checkout, not from the bundle
        meta = item["metadata"]
        pins.append(f"{_canonical(meta['name'])}=={meta['version']}")
    return sorted(pins)


def fetch_wheels(pins: list[str], wheels: Path, work: Path, extra_index_urls: list[str] = ()):
    """A wheel for every pin (downloaded, or built here from an sdist)."""
    requirements = work / "pins.txt"
    requirements.write_text("\n".join(pins) + "\n")
    args = ["wheel", "--no-deps", "--quiet", "--wheel-dir", str(wheels), "-r", str(requirements)]
    _pip(args, "Downloading the wheels", extra_index_urls=extra_index_urls)


def fetch_npm(project: Path, target: Path) -> None:
    """The locked proxy tree into an npm cache: `npm ci` once, in a scratch copy of the lockfile."""
    npm = shutil.which("npm")
    if npm is None:
        raise BundleError("npm is not installed here (Debian: `apt-get install npm`).")
    target.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(project / name, target / name)
    cache = target.parent / NPM_CACHE
    with tempfile.TemporaryDirectory(prefix="mlw-npm-") as scratch:
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(project / name, Path(scratch) / name)
        cmd = [npm, "ci", "--cache", str(cache), "--no-audit", "--no-fund", "--loglevel=error"]
        result = subprocess.run(cmd, cwd=scratch, capture_output=True, text=True)
        if result.returncode != 0:
            raise BundleError(f"`npm ci` for the proxy failed:\n{result.stderr.strip()[-2000:]}")
        if not (Path(scratch) / "node_modules" / ".bin" / "configurable-http-proxy").exists():
            raise BundleError("`npm ci` did not install configurable-http-proxy")
    for transient in ("_logs", "_update-notifier-last-checked", "_npx"):
        path = cache / transient
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def save_images(images: list[str], target: Path, engine: str | None = None) -> None:
    from ..cli.images_cmd import ImagesError, archive_name, find_engine, save_image

    try:
        eng = find_engine(engine)
        for image in images:
            save_image(eng, image, target / archive_name(image), show=False)
    except ImagesError as exc:
        raise BundleError(str(exc)) from None


def write_manifest(out: Path, target: Target, extras: list[str], pins: list[str]) -> dict:
    files = {}
    for path in sorted(out.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.name != MANIFEST:
            rel = path.relative_to(out).as_posix()
            files[rel] = {"sha256": sha256(path), "size": path.stat().st_size}
    manifest = {
        "format": FORMAT,
        "mlworkshop": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "target": target.__dict__,
        "extras": extras,
        "pins": pins,
        "files": files,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def create(
    out: Path,
    extras: list[str],
    images: list[str] = (),
    fresh: bool = False,
    extra_index_urls: list[str] = (),
    engine: str | None = None,
    project: Path = REPO,
    say: Callable[[str], None] = print,
) -> Created:
    unknown = [e for e in extras if e not in EXTRAS]
    if unknown:
        raise BundleError(f"unknown extra(s) {', '.join(unknown)}; choose from {', '.join(EXTRAS)}")
    if not (project / "pyproject.toml").is_file() or not (project / "package-lock.json").is_file():
        raise BundleError(
            f"{project} is not an mlworkshop checkout: run `bundle create` from a clone."
        )
    out = out.resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BundleError(f"{out} exists and is not empty: choose a new folder for the bundle.")
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    seconds: dict[str, float] = {}
    manifest: dict = {}

    def step(name: str, fn, *args):
        started = time.monotonic()
        say(f"{name} ...")
        fn(*args)
        seconds[name] = round(time.monotonic() - started, 1)

    try:
        with tempfile.TemporaryDirectory(prefix="mlw-bundle-") as work:
            pins: list[str] = []
            step(
                "resolve",
                lambda: pins.extend(resolve(project, extras, Path(work), fresh, extra_index_urls)),
            )
            (partial / REQUIREMENTS).write_text("\n".join(pins) + "\n")
            step("wheels", fetch_wheels, pins, partial / WHEELS, Path(work), extra_index_urls)
        step("npm", fetch_npm, project, partial / NPM)
        if "lessons" in extras:
            from ..site import bundled_lessons

            lessons = bundled_lessons()
            if lessons:
                shutil.copytree(lessons, partial / LESSONS)
        if images:
            step("images", save_images, list(images), partial / IMAGES, engine)
        step(
            "manifest",
            lambda: manifest.update(write_manifest(partial, Target.here(), extras, pins)),
        )
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()
    partial.rename(out)
    files = manifest["files"]
    return Created(out, pins, len(files), sum(f["size"] for f in files.values()), seconds)
