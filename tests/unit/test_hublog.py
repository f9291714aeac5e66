"""hub/hublog.py: the tee process copies every byte of the hub's output to its stdout and
hub.log, sorts the proxy's and the usage service's records (with their continuation lines) into
proxy.log and usage.log, keeps reading through SIGINT/SIGTERM/SIGHUP until the last writer is
gone, and keeps the files when its stdout goes away."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys

from mlworkshop.hub import hublog

HUB_LINE = b"[I 2026-12-01 20:26:01.217 JupyterHub app:3493] Running JupyterHub version 6.1.1\n"
PROXY_LINE = (
    b"2026-12-01T20:26:02.848Z [ConfigProxy] \x1b[32minfo\x1b[39m: Proxying https://*:8443\n"
)
PROXY_ERROR = (
    b"2026-12-01T20:26:03.087Z [ConfigProxy] \x1b[31merror\x1b[39m: Failed: Error: connect ECONNREFUSED\n"
    b"    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1611:16) {\n  errno: -111,\n}\n"
)
USAGE_LINE = b"[I 2026-12-01 20:26:07,143 usage] NVML not available: no per-process GPU samples\n"
HUB_TRACEBACK = (
    b"[E 2026-12-01 20:27:00.000 JupyterHub web:1875] Uncaught exception\n"
    b'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: boom\n'
)
PLAIN = b"mlworkshop hub on https://127.0.0.1:8443/ (site /srv/mlworkshop)\n"


def test_source_of_lines():
    assert hublog.source_of(HUB_LINE, None) is None
    assert hublog.source_of(PROXY_LINE, None) == hublog.PROXY
    assert hublog.source_of(USAGE_LINE, hublog.PROXY) == hublog.USAGE
    assert (
        hublog.source_of(b"    at TCPConnectWrap\n", hublog.PROXY) == hublog.PROXY
    )  # a continuation
    assert hublog.source_of(HUB_LINE, hublog.PROXY) is None


def test_tee_keeps_every_byte_and_sorts_records(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o750)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlworkshop.hub.hublog", str(logs)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        preexec_fn=hublog.ignore_stop_signals,
    )  # as start_tee does
    chunks = [
        PLAIN,
        HUB_LINE,
        PROXY_LINE[:20],
        PROXY_LINE[20:] + PROXY_ERROR,
        USAGE_LINE,
        HUB_TRACEBACK,
        b"".join(b"line %d of a busy hub\n" % i for i in range(5000)),
        b"last words, no newline",
    ]
    proc.stdin.write(chunks[0])
    proc.stdin.flush()
    for sig in (
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGHUP,
    ):  # Ctrl-C, systemctl stop, a closed terminal
        proc.send_signal(sig)
    for chunk in chunks[1:]:
        proc.stdin.write(chunk)
        proc.stdin.flush()
    proc.stdin.close()
    shown = proc.stdout.read()
    assert proc.wait(timeout=30) == 0
    everything = b"".join(chunks)
    assert shown == everything
    assert (logs / "hub.log").read_bytes() == everything
    assert (logs / "proxy.log").read_bytes() == PROXY_LINE + PROXY_ERROR
    assert (logs / "usage.log").read_bytes() == USAGE_LINE
    for name in ("hub.log", "proxy.log", "usage.log"):
        assert stat.S_IMODE((logs / name).stat().st_mode) == 0o640


def test_tee_goes_on_when_its_terminal_is_gone(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    read_out, write_out = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlworkshop.hub.hublog", str(logs)],
        stdin=subprocess.PIPE,
        stdout=write_out,
    )
    os.close(write_out)
    os.close(
        read_out
    )  # the terminal is gone: writing to it fails (EPIPE; SIGPIPE is ignored by Python)
    proc.stdin.write(HUB_LINE * 3)
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    assert (logs / "hub.log").read_bytes() == HUB_LINE * 3


def test_appends_and_rotates(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "hub.log").write_bytes(b"x" * 2000)
    (logs / "proxy.log").write_bytes(b"kept\n")
    hublog.rotate(logs, max_bytes=1000)
    assert (logs / "hub.log.1").read_bytes() == b"x" * 2000 and not (logs / "hub.log").exists()
    tee = hublog.Tee(logs, None)
    tee.feed(PROXY_LINE)
    tee.close()
    assert (logs / "proxy.log").read_bytes() == b"kept\n" + PROXY_LINE


def test_a_log_a_kept_process_still_writes_is_not_rotated(tmp_path):
    """The kept proxy appends to proxy.log across hub restarts (hub/kept_proxy.py): moved aside,
    its lines would go to proxy.log.1 and, at the next move, into a deleted file."""
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in ("hub.log", "proxy.log"):
        (logs / name).write_bytes(b"x" * 2000)
    hublog.rotate(logs, max_bytes=1000, busy=("proxy.log",))
    assert (logs / "hub.log.1").exists() and not (logs / "hub.log").exists()
    assert (logs / "proxy.log").read_bytes() == b"x" * 2000 and not (logs / "proxy.log.1").exists()


def test_start_tee_sends_a_processs_output_to_hub_log(tmp_path):
    """What `mlworkshop up` does before it becomes JupyterHub: afterwards its fds 1 and 2, and
    those of the process it execs, reach the terminal and hub.log."""
    logs = tmp_path / "logs"
    logs.mkdir()
    code = (
        "import os, sys\nfrom pathlib import Path\nfrom mlworkshop.hub.hublog import start_tee\n"
        f"assert start_tee(Path({str(logs)!r})) is None\n"
        "print('from up', flush=True)\n"
        "os.execv('/bin/sh', ['sh', '-c', 'echo from the hub; echo on stderr >&2'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # the tee has read to the end when the pipe's last writer is gone; its output is complete once
    # subprocess.run has read our stdout to EOF (the tee holds it too)
    assert result.stdout == b"from up\nfrom the hub\non stderr\n"
    assert (logs / "hub.log").read_bytes() == b"from up\nfrom the hub\non stderr\n"
