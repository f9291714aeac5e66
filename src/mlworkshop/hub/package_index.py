"""The students' package index (packages.index: local): devpi-server, run by the hub as a service,
as the account _mlw-pkgs under a root hub.

devpi keeps two indexes in <site>/packages/index/ (that account's, 0700): root/pypi, its cache of
PyPI (it fetches through while the internet answers, serves what it has when not, and with
packages.offline never tries), and root/local, which holds the wheels the admin put there (the
bundle's through packages.seed, more with `mlworkshop packages add`) and has root/pypi as its
base. Students' pip reads root/local/+simple/ (hub/packages.py sets PIP_INDEX_URL): a project
uploaded to root/local is served from there alone (devpi's default, so nobody upstream can slip
in a newer release of a name the admin provides); any other name comes from the cache.

Started as `python -m mlworkshop.hub.package_index --serverdir DIR --port N [--seed DIR]...`:
makes the server folder on first start (root's password from $MLW_INDEX_PASSWORD, never on a
command line other accounts can read), starts devpi-server, creates root/local if missing,
uploads the seed wheels it does not have, then stays with devpi-server until it exits.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urljoin

import httpx

INDEX = "root/local"
PASSWORD_ENV = "MLW_INDEX_PASSWORD"
PACKAGE_SUFFIXES = (".whl", ".tar.gz", ".zip")


class PackageIndexError(RuntimeError):
    """str() says what failed and what a lab admin can do."""


def _bin(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


def name_version(filename: str) -> tuple[str, str]:
    """(project, version) from a wheel's or an sdist's file name."""
    if filename.endswith(".whl"):
        parts = filename[:-4].split("-")
        if len(parts) >= 5:
            return parts[0], parts[1]
    else:
        stem = re.sub(r"\.(tar\.gz|zip)$", "", filename)
        match = re.match(r"^(?P<name>.+)-(?P<version>[0-9][^-]*)$", stem)
        if match:
            return match["name"], match["version"]
    raise PackageIndexError(f"{filename} is not a wheel or sdist file name (NAME-VERSION...)")


def package_files(paths: Iterable[Path]) -> list[Path]:
    """The wheels and sdists named, or inside the folders named (not recursing)."""
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.name.endswith(PACKAGE_SUFFIXES))
        elif path.is_file() and path.name.endswith(PACKAGE_SUFFIXES):
            found.append(path)
        elif not path.exists():
            raise PackageIndexError(f"{path} does not exist")
        else:
            raise PackageIndexError(
                f"{path} is not a wheel (.whl), an sdist (.tar.gz, .zip) or a folder"
            )
    return found


def _local_files(client: httpx.Client, project: str) -> set[str]:
    """Names of the files root/local itself holds for `project` (its simple page also lists the
    mirror's, which are only links until someone downloads them)."""
    page_url = f"/{INDEX}/+simple/{project}/"
    page = client.get(page_url)
    if page.status_code != 200:
        return set()
    own = f"/{INDEX}/+f/"
    found = set()
    for href in re.findall(r'href="([^"#]+)', page.text):
        path = urljoin(page_url, href)
        if path.startswith(own):
            found.add(path.rsplit("/", 1)[-1])
    return found


def upload(base: str, password: str, files: list[Path], say=print) -> tuple[int, int]:
    """Upload to root/local what it does not have yet: (uploaded, already there)."""
    uploaded = present = 0
    listed: dict[str, set[str]] = {}  # project -> files root/local holds: those are not sent
    with httpx.Client(base_url=base, auth=("root", password), timeout=600) as client:
        for path in files:
            name, version = name_version(path.name)
            project = re.sub(r"[-_.]+", "-", name).lower()
            if project not in listed:
                listed[project] = _local_files(client, project)
            if path.name in listed[project]:
                present += 1
                continue
            with open(path, "rb") as fh:
                response = client.post(
                    f"/{INDEX}/",
                    data={":action": "file_upload", "name": name, "version": version},
                    files={"content": (path.name, fh, "application/octet-stream")},
                )
            if response.status_code == 200 and "identical file" in response.text:
                present += 1
            elif response.status_code == 200:
                uploaded += 1
            elif response.status_code == 409:
                present += 1  # the same name, another build: a non-volatile index keeps the first
                say(
                    f"kept the copy of {path.name} the index already has (another file of that name)"
                )
            elif response.status_code in (401, 403):
                raise PackageIndexError(
                    "the package index refused the site's password: was <site>/packages/index "
                    "made by another site? Stop the hub, remove that folder, start the hub again."
                )
            else:
                raise PackageIndexError(
                    f"uploading {path.name} failed: HTTP {response.status_code} {response.text[:300]}"
                )
    return uploaded, present


def wait_until_up(base: str, proc: subprocess.Popen | None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise PackageIndexError(
                f"devpi-server exited with status {proc.returncode} while starting"
            )
        try:
            if httpx.get(f"{base}/+api", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise PackageIndexError(f"devpi-server did not answer at {base} within {timeout:.0f} s")


def ensure_index(base: str, password: str) -> None:
    with httpx.Client(base_url=base, auth=("root", password), timeout=30) as client:
        if client.get(f"/{INDEX}", headers={"Accept": "application/json"}).status_code == 200:
            return
        response = client.put(f"/{INDEX}", json={"bases": ["root/pypi"], "volatile": False})
        if response.status_code not in (200, 201):
            raise PackageIndexError(
                f"creating {INDEX} failed: HTTP {response.status_code} {response.text[:300]}"
            )


def serve(serverdir: Path, port: int, seeds: list[Path], offline: bool, password: str) -> int:
    env = {**os.environ, "DEVPISERVER_ROOT_PASSWD": password}
    if not (serverdir / ".nodeinfo").exists():
        init = subprocess.run(
            [_bin("devpi-init"), "--serverdir", str(serverdir)],
            env=env,
            capture_output=True,
            text=True,
        )
        if init.returncode != 0:
            print(f"[package-index] devpi-init failed: {init.stderr[-1500:]}", file=sys.stderr)
            return 1
    secret = serverdir / ".mlw-secret"
    if not secret.exists():  # login tokens survive a restart; devpi otherwise makes one per start
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, os.urandom(32).hex().encode())
        os.close(fd)
    cmd = [
        _bin("devpi-server"),
        "--serverdir",
        str(serverdir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--secretfile",
        str(secret),
    ]
    if offline:
        cmd.append("--offline-mode")
    env.pop("DEVPISERVER_ROOT_PASSWD")
    proc = subprocess.Popen(cmd, env=env)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: proc.send_signal(signum))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, proc)
        for attempt in range(20):  # a devpi that just started may drop the first connections
            try:
                ensure_index(base, password)
                break
            except httpx.TransportError:
                if attempt == 19:
                    raise
                time.sleep(1)
        for seed in seeds:
            try:
                files = package_files([seed])
            except PackageIndexError as exc:
                print(f"[package-index] seed skipped: {exc}", file=sys.stderr, flush=True)
                continue
            done, had = upload(base, password, files)
            print(f"[package-index] {seed}: {done} uploaded, {had} already there", flush=True)
    except (PackageIndexError, httpx.HTTPError, OSError) as exc:
        print(f"[package-index] {exc}", file=sys.stderr, flush=True)
    return proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlworkshop.hub.package_index")
    parser.add_argument("--serverdir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", type=Path, action="append", default=[])
    parser.add_argument("--offline", action="store_true")
    args = parser.parse_args(argv)
    password = os.environ.pop(PASSWORD_ENV, "")
    if not password:
        print(f"[package-index] ${PASSWORD_ENV} is not set", file=sys.stderr)
        return 2
    return serve(args.serverdir, args.port, args.seed, args.offline, password)


if __name__ == "__main__":
    raise SystemExit(main())
