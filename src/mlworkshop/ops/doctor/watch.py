"""`mlworkshop doctor --watch`: the doctor on a schedule, as a service the hub runs (seed 002's
self-heal). Each run repairs what is safe (doctor.fix), appends what it found and did to
<site>/logs/doctor.log, and leaves its findings in <site>/state/doctor.json, which the hub's
metrics read (hub/metrics.py).

It runs as the hub's user (root under a root hub: chmod of content, signals to students'
processes). What it writes is in folders only root can write (logs/ 0750, state/ 0700), opened
without following a link; what it repairs is done as permissions.py and hub_checks.py say.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import threading
from pathlib import Path

from ...site import Site
from . import Report, run_doctor, worst

LOG_NAME = "doctor.log"
STATE_NAME = "doctor.json"


def state_file(site: Site) -> Path:
    return site.state / STATE_NAME


def _append(path: Path, lines: list[str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    try:
        os.write(fd, "".join(line + "\n" for line in lines).encode())
    finally:
        os.close(fd)


def _write_state(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)


def record(site: Site, report: Report, now: dt.datetime | None = None) -> list[str]:
    """Log lines for one run (also appended to doctor.log) and the state file for the metrics."""
    now = now or dt.datetime.now(dt.UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    counts = {s: sum(f.severity == s for f in report.findings) for s in ("ok", "warn", "error")}
    lines = [
        f"{stamp} run: {worst(report.findings)} ({counts['error']} error, {counts['warn']} warn, {counts['ok']} ok)"
    ]
    for repair in report.repairs:
        if "done" in repair:
            lines.append(f"{stamp} fixed {repair['id']}: {repair['done']}")
        else:
            lines.append(f"{stamp} could not fix {repair['id']}: {repair['failed']}")
    for finding in report.findings:
        if finding.severity != "ok":
            lines.append(f"{stamp} {finding.severity} {finding.id}: {finding.message}")
    site.logs.mkdir(mode=0o750, parents=True, exist_ok=True)
    _append(site.logs / LOG_NAME, lines)
    _write_state(state_file(site), {"time": now.timestamp(), **report.as_dict()})
    return lines


def watch(site: Site, every: float, fix: bool, first_delay: float | None = None) -> None:
    """Run until SIGTERM/SIGINT (the hub stops its services with SIGTERM)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    delay = min(every, 30.0) if first_delay is None else first_delay
    while not stop.wait(delay):
        try:
            report = run_doctor(site, fix=fix)
            for line in record(site, report):
                print(line, flush=True)
        except Exception as exc:  # noqa: BLE001 - the watch keeps watching; the log says why
            print(f"doctor run failed: {type(exc).__name__}: {exc}", flush=True)
        delay = every
