"""Backup and restore of a site with many users' files: throughput, where the time goes, and the
hub's /hub/health latency while a backup runs.

    .venv/bin/python bench/backup.py                       (as root; 60 users x 50 MB, ~3 GB)
    .venv/bin/python bench/backup.py --users 20 --mb 20    (smaller)

Builds a site under /tmp with N homes of M MB each, as a class leaves them: per user ~70% by size
of incompressible files (weights, .npy, images: random bytes) in 1-8 MB pieces, the rest
notebooks, code and CSV (text), plus 40 small files. Then:
1. `create_backup` (the code `mlworkshop backup` runs), timed, with its own split of the time;
2. `verify_archive` (`mlworkshop backup --verify`);
3. `restore_site` into a fresh folder, timed and split (read and check / ownership / databases);
4. a real hub started on the site, /hub/health probed every 20 ms for 15 s with nothing else
   running, then again while `mlworkshop backup` (the real command: nice 10, lowest disk
   priority) runs; p50 / p99 / max of both.
Files are root's (no student accounts are made: ownership is a name lookup per entry). The page
cache is not dropped, so reads are from memory where it holds the site: the numbers are the CPU
side (hashing, compression, tar), which is what a 2-core class server runs short of.
Prints a table. Not a timed test.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlworkshop.config import load_config  # noqa: E402
from mlworkshop.ops.backup import create_backup  # noqa: E402
from mlworkshop.ops.restore import restore_site, verify_archive  # noqa: E402
from mlworkshop.site import Site, init_site  # noqa: E402
from tests.integration.hubctl import MLW, Hub  # noqa: E402

MB = 1_000_000
TEXT = (
    '{\n "cell_type": "code",\n "source": ["import torch\\n", "model = Net()\\n"],\n'
    ' "outputs": [{"text": "epoch 3 loss 0.4213 acc 0.8812"}]\n},\n'
)


def build(site: Site, users: int, mb: int, seed: int = 13) -> int:
    rng = random.Random(seed)
    total = 0
    text_block = (TEXT * (MB // len(TEXT) + 1))[:MB].encode()
    for u in range(users):
        work = site.users / f"student{u:03d}" / "work"
        work.mkdir(parents=True)
        (site.submissions / f"student{u:03d}").mkdir(parents=True)
        budget = mb * MB
        binary = int(budget * 0.7)
        n = 0
        while binary > 0:
            size = min(binary, rng.randint(1, 8) * MB)
            (work / f"weights-{n}.bin").write_bytes(os.urandom(size))
            binary -= size
            total += size
            n += 1
        text = budget - int(budget * 0.7) - 40 * 4096
        n = 0
        while text > 0:
            size = min(text, rng.randint(1, 4) * MB)
            (work / f"notebook-{n}.ipynb").write_bytes((text_block * (size // MB + 1))[:size])
            text -= size
            total += size
            n += 1
        for k in range(40):
            (work / f"small-{k}.py").write_bytes(text_block[:4096])
            total += 4096
        (site.submissions / f"student{u:03d}" / "hw1.ipynb").write_bytes(text_block[:20000])
        total += 20000
    return total


def split(timings: dict[str, float], keys: list[str]) -> str:
    shown = sorted(((timings.get(k, 0.0), k) for k in keys), reverse=True)
    return ", ".join(f"{k} {v:.1f}s" for v, k in shown if v >= 0.05)


def probe(url: str, seconds: float, stop: threading.Event | None = None) -> list[float]:
    times = []
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            t = time.perf_counter()
            client.get(url + "/hub/health")
            times.append((time.perf_counter() - t) * 1000)
            time.sleep(0.02)
    return times


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) >= 100 else max(values)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=60)
    parser.add_argument("--mb", type=int, default=50, help="MB of files per user")
    parser.add_argument(
        "--level", type=int, default=None, help="gzip level (default: backup.compression_level)"
    )
    parser.add_argument(
        "--no-health", action="store_true", help="skip the hub and /hub/health part"
    )
    parser.add_argument("--keep", action="store_true", help="keep the folders under /tmp")
    args = parser.parse_args()
    console = Console()
    work = Path(tempfile.mkdtemp(prefix="mlw-bench-backup-", dir="/tmp"))
    os.chmod(work, 0o755)
    rows: list[tuple[str, ...]] = []
    try:
        site = Site(work / "site")
        init_site(site)
        t = time.perf_counter()
        data = build(site, args.users, args.mb)
        console.print(
            f"built {args.users} homes, {data / MB:.0f} MB, in {time.perf_counter() - t:.0f} s"
        )
        cfg = load_config(site.root)

        archive = work / "backup.tar.gz"
        result = create_backup(site, cfg, archive, level=args.level)
        rows.append(
            (
                "backup",
                f"{result.seconds:.1f}",
                f"{result.bytes_in / MB / result.seconds:.0f}",
                f"{result.bytes_out / MB:.0f} ({result.bytes_out / max(result.bytes_in, 1):.0%})",
                split(result.timings, list(result.timings)),
            )
        )

        t = time.perf_counter()
        contents = verify_archive(archive)
        seconds = time.perf_counter() - t
        rows.append(
            (
                "verify",
                f"{seconds:.1f}",
                f"{contents.bytes / MB / seconds:.0f}",
                "-",
                split(contents.timings, list(contents.timings)),
            )
        )

        restored = restore_site(archive, Site(work / "restored"))
        timings = dict(restored.timings)
        rows.append(
            (
                "restore",
                f"{restored.seconds:.1f}",
                f"{restored.contents.bytes / MB / restored.seconds:.0f}",
                "-",
                split(
                    timings,
                    [
                        "read archive",
                        "decompress",
                        "sha256",
                        "write files",
                        "ownership",
                        "databases",
                    ],
                ),
            )
        )
        shutil.rmtree(work / "restored")

        health = None
        if not args.no_health:
            hub = Hub(site.root)
            hub.configure(**{"culler.enabled": "false"})
            hub.start()
            try:
                idle = probe(hub.url, 15)
                stop = threading.Event()
                t = time.perf_counter()
                backup = subprocess.Popen(
                    [*MLW, "backup", str(work / "during.tar.gz"), "--site", str(site.root)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                waiter = threading.Thread(target=lambda: (backup.wait(), stop.set()))
                waiter.start()
                during = probe(hub.url, 3600, stop)
                waiter.join()
                took = time.perf_counter() - t
                health = (idle, during, took, backup.returncode)
            finally:
                hub.stop()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    table = Table(
        title=f"Backup of {args.users} users x {args.mb} MB ({data / MB:.0f} MB of files; "
        f"{os.cpu_count()} CPUs; page cache warm)"
    )
    for name, justify in (
        ("step", "left"),
        ("seconds", "right"),
        ("MB/s of files", "right"),
        ("archive MB", "right"),
        ("where the time goes", "left"),
    ):
        table.add_column(name, justify=justify)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if health:
        idle, during, took, rc = health
        h = Table(title=f"/hub/health while `mlworkshop backup` runs ({took:.0f} s, exit {rc})")
        for name in ("", "probes", "p50 ms", "p99 ms", "max ms"):
            h.add_column(name, justify="right" if name else "left")
        for name, values in (("hub idle", idle), ("during backup", during)):
            h.add_row(
                name,
                str(len(values)),
                f"{statistics.median(values):.1f}",
                f"{pct(values, 99):.1f}",
                f"{max(values):.1f}",
            )
        console.print(h)


if __name__ == "__main__":
    main()
