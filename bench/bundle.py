"""Offline install bundles: size, create time, verify time and offline install time.

    nice -n 19 .venv/bin/python bench/bundle.py                   (as root; lessons extra: GBs)
    nice -n 19 .venv/bin/python bench/bundle.py --extras ""       (the hub alone)

1. `mlworkshop bundle create OUT --extras EXTRAS` (the real command: resolves this checkout at
   this venv's versions, downloads the wheels from the package index, npm cache, manifest), timed
   with its own split (resolve / wheels / npm / manifest). The pip cache is what it is on this
   machine (a second run downloads less): the first run's number is the one to quote.
2. `mlworkshop bundle verify OUT` (every sha256).
3. The install on a machine without network: a fresh clone of HEAD, then
   `python3 -m mlworkshop.ops.bundle_install OUT` (what `make up BUNDLE=OUT` runs) inside a
   network namespace with only loopback (needs root), timed.
Prints a table with sizes by part (wheels, the largest wheels, npm). Not a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
MLW = [sys.executable, "-m", "mlworkshop.cli.main"]


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _timed(cmd: list[str], **kwargs) -> tuple[float, subprocess.CompletedProcess]:
    started = time.monotonic()
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    return time.monotonic() - started, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--extras", default="lessons", help="comma-separated; '' for none")
    parser.add_argument("--keep", action="store_true", help="keep the bundle and the clone")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlw-bench-bundle-", dir="/tmp"))
    os.chmod(work, 0o755)
    out = work / "bundle"
    table = Table(title=f"bundle (extras: {args.extras or 'none'})")
    table.add_column("what")
    table.add_column("value", justify="right")
    try:
        cmd = [*MLW, "bundle", "create", str(out)]
        if args.extras:
            cmd += ["--extras", args.extras]
        seconds, made = _timed(cmd)
        table.add_row("create (total)", f"{seconds:.0f} s")
        table.add_row(
            "  create: its own split",
            made.stdout.strip().splitlines()[-2].split("(")[-1].rstrip(")"),
        )
        manifest = json.loads((out / "manifest.json").read_text())
        table.add_row("pinned packages", str(len(manifest["pins"])))
        table.add_row("files", str(len(manifest["files"])))
        table.add_row("size (total)", f"{_size(out) / 1e6:,.0f} MB")
        table.add_row("  wheels/", f"{_size(out / 'wheels') / 1e6:,.0f} MB")
        table.add_row("  npm/", f"{_size(out / 'npm') / 1e6:,.1f} MB")
        biggest = sorted((out / "wheels").iterdir(), key=lambda p: p.stat().st_size, reverse=True)
        for wheel in biggest[:5]:
            table.add_row(f"    {wheel.name[:60]}", f"{wheel.stat().st_size / 1e6:,.0f} MB")
        seconds, _ = _timed([*MLW, "bundle", "verify", str(out)])
        table.add_row("verify (sha256 of every file)", f"{seconds:.1f} s")

        clone = work / "clone"
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
        ns = f"mlw-bench-{os.getpid()}"
        subprocess.run(["ip", "netns", "add", ns], check=True)
        try:
            subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
            install = ["ip", "netns", "exec", ns, "/usr/bin/python3", "-m"]
            install += ["mlworkshop.ops.bundle_install", str(out), "--project", str(clone)]
            install += ["--python", "/usr/bin/python3"]
            env = {**os.environ, "PYTHONPATH": str(clone / "src")}
            seconds, _ = _timed(install, env=env, cwd=clone)
        finally:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        table.add_row("install offline (venv + proxy)", f"{seconds:.0f} s")
        table.add_row("  installed venv", f"{_size(clone / '.venv') / 1e6:,.0f} MB")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
    Console().print(table)


if __name__ == "__main__":
    main()
