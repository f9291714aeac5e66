"""The proxy's and the hub's processes, found from their pid files in the site's state/ and
stopped: for `mlworkshop up` (which ports a kept proxy holds) and `mlworkshop down`. Imports
nothing of JupyterHub, so the CLI stays quick (hub/kept_proxy.py has the why)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psutil

PROXY_MARK = "configurable-http-proxy"
FINGERPRINT = "proxy.fingerprint"


def has_ended(process: psutil.Process) -> bool:
    """Gone, or exited and not yet reaped (a zombie): a kept proxy outlives the hub that started
    it and a hub may outlive its parent's interest, so whoever reaps them (PID 1, a test runner)
    does it when it gets to it, and until then the pid still "exists"."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def running_process(pid_file: Path, mark: str) -> psutil.Process | None:
    """The process the pid file names, if it still runs and its command line holds `mark`
    (a pid reused by something else is not it)."""
    try:
        pid = int(pid_file.read_text().strip())
        process = psutil.Process(pid)
        if has_ended(process):
            return None
        if not any(mark in part for part in process.cmdline()):
            return None
        return process
    except (OSError, ValueError, psutil.Error):
        return None


def running_proxy(pid_file: Path) -> psutil.Process | None:
    """The configurable-http-proxy process the pid file names, if it is one and still runs."""
    return running_process(pid_file, PROXY_MARK)


def listening_ports(process: psutil.Process) -> set[int]:
    try:
        return {
            conn.laddr.port
            for conn in process.net_connections(kind="inet")
            if conn.status == psutil.CONN_LISTEN
        }
    except psutil.Error:
        return set()


def stop_pid_file(pid_file: Path, mark: str, timeout: float = 30) -> int | None:
    """SIGTERM the process the pid file names (if it is what `mark` says), wait for it, and kill
    it if it will not go; its pid, or None if it did not run."""
    process = running_process(pid_file, mark)
    if process is None:
        return None
    try:
        process.send_signal(signal.SIGTERM)
        if not _ended(process, timeout):
            process.kill()
    except psutil.NoSuchProcess:
        pass
    return process.pid


def _ended(process: psutil.Process, timeout: float) -> bool:
    """Whether the process ended (has_ended) within `timeout`. Not psutil's wait(): for a process
    that is not our child it waits until the zombie is reaped (`mlworkshop down` on a hub its
    parent had not reaped yet waited 30 s and then killed it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if has_ended(process):
            return True
        time.sleep(0.05)
    return False


def stop_kept_proxy(state: Path, timeout: float = 10) -> int | None:
    """Stop the proxy a hub of this site left running; its pid, or None if none ran."""
    pid = stop_pid_file(state / "proxy.pid", PROXY_MARK, timeout)
    for leftover in (state / "proxy.pid", state / FINGERPRINT):
        leftover.unlink(missing_ok=True)
    return pid


def kept_proxy_ports(state: Path) -> set[int]:
    """The ports the proxy an earlier hub of this site left running listens on (none if none
    runs): not "in use by something else" for `up` (the next hub adopts that proxy, or stops it
    before starting its own) nor for `doctor`."""
    process = running_proxy(state / "proxy.pid")
    return listening_ports(process) if process is not None else set()
