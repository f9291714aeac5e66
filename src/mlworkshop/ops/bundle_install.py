"""Install an offline bundle (made by `mlworkshop bundle create`, ops/bundle.py) into a checkout,
on a machine with no network: the venv from the bundle's wheels, the proxy from its npm cache.

Standard library only, because it runs before there is a venv: `make up BUNDLE=OUT` calls
`python3 -m mlworkshop.ops.bundle_install OUT` with src/ on PYTHONPATH. `mlworkshop bundle
install OUT` is the same function, for a checkout that already has its venv.

Order, so that a bad bundle changes nothing: the manifest is read, the bundle's Python and
architecture are compared with this machine's, every file's sha256 is checked, and only then is
anything created. A venv this run created is removed again when an install step fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

FORMAT = 1
MANIFEST = "manifest.json"
WHEELS = "wheels"
REQUIREMENTS = "requirements.txt"
NPM = "npm"
NPM_CACHE = "npm/cache"
IMAGES = "images"
LESSONS = "lessons"
# written into the venv when an install completes (the Makefile's stamp is .venv/.installed)
VENV_STAMP = ".bundle"
MAKE_STAMP = ".installed"


class BundleError(RuntimeError):
    """str() says what is wrong with the bundle or this machine, and what to do."""


@dataclass(frozen=True)
class Target:
    """What the wheels of a bundle were chosen for: they install only where all three match."""

    implementation: str  # cpython
    python: str  # 3.11
    machine: str  # x86_64

    @classmethod
    def here(cls, python: str | None = None) -> Target:
        """This machine, for the interpreter `python` (default: the running one)."""
        if python and Path(python).resolve() != Path(sys.executable).resolve():
            code = (
                "import platform,sys;"
                "print(sys.implementation.name, '%d.%d' % sys.version_info[:2], platform.machine())"
            )
            out = subprocess.run([python, "-c", code], capture_output=True, text=True)
            if out.returncode != 0:
                raise BundleError(f"{python} does not run: {out.stderr.strip()}")
            impl, version, machine = out.stdout.split()
            return cls(impl, version, machine)
        return cls(
            sys.implementation.name, "{}.{}".format(*sys.version_info[:2]), platform.machine()
        )

    def describe(self) -> str:
        return f"{self.implementation} {self.python} on {self.machine}"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(bundle: Path) -> dict:
    path = bundle / MANIFEST
    if not bundle.is_dir():
        raise BundleError(
            f"{bundle} is not a folder: give the folder `mlworkshop bundle create` made."
        )
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(
            f"{bundle} has no {MANIFEST}: it is not a bundle made by `mlworkshop bundle create`, "
            "or it was copied incompletely. Copy the whole folder again."
        ) from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path} cannot be read ({exc}): copy the bundle again.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(
            f"{path} is not a bundle manifest this version reads (format {FORMAT}): make the bundle "
            "with the same mlworkshop version as this checkout."
        )
    return manifest


def check_target(manifest: dict, here: Target) -> None:
    made = Target(**manifest["target"])
    if made != here:
        raise BundleError(
            f"This bundle was made for {made.describe()}; this machine has {here.describe()}. "
            f"Its wheels do not install here: make the bundle on a connected machine with "
            f"{here.describe()} (`mlworkshop bundle create`), or install Python {made.python} here "
            f"and run the install with it (`make up BUNDLE=... PYTHON=python{made.python}`)."
        )


def verify(bundle: Path, manifest: dict | None = None) -> dict:
    """Every file the manifest lists is there with its size and sha256; returns the manifest."""
    manifest = manifest or read_manifest(bundle)
    missing, corrupt = [], []
    for rel, entry in sorted(manifest["files"].items()):
        path = bundle / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise BundleError(f"{bundle / MANIFEST} names a file outside the bundle: {rel}")
        if not path.is_file():
            missing.append(rel)
        elif path.stat().st_size != entry["size"] or sha256(path) != entry["sha256"]:
            corrupt.append(rel)
    if missing or corrupt:
        lines = []
        for label, names in (("missing", missing), ("corrupt (checksum differs)", corrupt)):
            if names:
                shown = ", ".join(names[:5]) + (
                    f" and {len(names) - 5} more" if len(names) > 5 else ""
                )
                lines.append(f"{len(names)} file(s) {label}: {shown}")
        raise BundleError(
            f"The bundle {bundle} is incomplete or damaged; nothing was installed. "
            + "; ".join(lines)
            + ". Copy the bundle again from the machine that made it (or make it again)."
        )
    return manifest


def _run(cmd: list[str], what: str, cwd: Path | None = None, env: dict | None = None) -> None:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr.strip() or result.stdout.strip())[-2000:]
        raise BundleError(f"{what} failed (exit {result.returncode}):\n{tail}")


def offline_pip_env() -> dict[str, str]:
    """pip sees the bundle's wheels and nothing else: no index, no find-links of this machine's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_NO_INDEX"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def bundle_id(manifest: dict) -> str:
    return hashlib.sha256(json.dumps(manifest["files"], sort_keys=True).encode()).hexdigest()[:16]


def install_python(bundle: Path, manifest: dict, project: Path, python: str, say=print) -> Path:
    """The checkout's .venv with the project (editable) and exactly the bundle's pins."""
    venv = project / ".venv"
    stamp = venv / VENV_STAMP
    if stamp.exists() and stamp.read_text().strip() == bundle_id(manifest):
        say(f"{venv}: already installed from this bundle")
        return venv
    created = not (venv / "bin" / "python").exists()
    try:
        if created:
            say(f"creating {venv} with {python}")
            _run([python, "-m", "venv", str(venv)], f"`{python} -m venv {venv}`")
        extras = ",".join(manifest.get("extras", []))
        spec = f"{project}[{extras}]" if extras else str(project)
        say(f"installing {len(manifest.get('pins', []))} pinned packages from {bundle / WHEELS}")
        _run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--no-index",
                "--find-links",
                str(bundle / WHEELS),
                "--constraint",
                str(bundle / REQUIREMENTS),
                "--editable",
                spec,
            ],
            "pip install from the bundle's wheels",
            env=offline_pip_env(),
        )
    except BaseException:
        if created:
            shutil.rmtree(venv, ignore_errors=True)
        raise
    stamp.write_text(bundle_id(manifest) + "\n")
    (venv / MAKE_STAMP).touch()
    return venv


def install_proxy(bundle: Path, project: Path, say=print) -> None:
    """node_modules from the bundle's npm cache (`npm ci --offline`): the checkout's lockfile must
    be the one the bundle was made from."""
    lock = project / "package-lock.json"
    if sha256(lock) != sha256(bundle / NPM / "package-lock.json"):
        raise BundleError(
            f"{lock} differs from the one the bundle was made with ({bundle / NPM / 'package-lock.json'}): "
            "make the bundle from this same checkout (same commit)."
        )
    npm = shutil.which("npm")
    if npm is None:
        raise BundleError(
            "npm is not installed: the proxy (configurable-http-proxy) needs Node.js and npm "
            "(Debian: `apt-get install nodejs npm`, from the room's package mirror or DVD)."
        )
    say("installing configurable-http-proxy from the bundle's npm cache")
    _run(
        [
            npm,
            "ci",
            "--offline",
            "--cache",
            str((bundle / NPM_CACHE).resolve()),
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ],
        "npm ci --offline from the bundle's cache",
        cwd=project,
    )
    (project / "node_modules" / ".bin" / "configurable-http-proxy").touch()


def install_images(bundle: Path, venv: Path, say=print) -> None:
    archives = sorted((bundle / IMAGES).glob("*.tar.gz"))
    if not archives:
        return
    if not (shutil.which("docker") or shutil.which("podman")):
        say(
            f"not loaded: {len(archives)} image(s) in {bundle / IMAGES} (no docker or podman here; "
            f"load them later with `mlworkshop images load --dir {bundle / IMAGES}`)"
        )
        return
    _run(
        [str(venv / "bin" / "mlworkshop"), "images", "load", "--dir", str(bundle / IMAGES)],
        "loading the bundle's container images",
    )
    say(f"loaded {len(archives)} image(s)")


def install(
    bundle: Path, project: Path, python: str | None = None, images: bool = True, say=print
) -> Path:
    """Check everything, then install; returns the venv."""
    bundle, project = bundle.resolve(), project.resolve()
    python = python or sys.executable
    if not (project / "pyproject.toml").is_file():
        raise BundleError(f"{project} is not an mlworkshop checkout (no pyproject.toml).")
    manifest = read_manifest(bundle)
    check_target(manifest, Target.here(python))
    say(f"checking {len(manifest['files'])} files of {bundle}")
    verify(bundle, manifest)
    venv = install_python(bundle, manifest, project, python, say)
    install_proxy(bundle, project, say)
    if images:
        install_images(bundle, venv, say)
    say(f"installed from {bundle}: start the hub with `make up` (or {venv}/bin/mlworkshop up)")
    return venv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m mlworkshop.ops.bundle_install",
        description="Install an mlworkshop bundle into a checkout, without network.",
    )
    parser.add_argument("bundle", type=Path)
    parser.add_argument(
        "--project", type=Path, default=Path.cwd(), help="The checkout (default: .)"
    )
    parser.add_argument("--python", default=None, help="Python for the venv (default: this one)")
    parser.add_argument("--no-images", action="store_true", help="Do not load container images")
    args = parser.parse_args(argv)
    try:
        install(args.bundle, args.project, args.python, images=not args.no_images)
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
