"""The hub's own output under `mlworkshop up`: where it went before (the terminal, or journald
under systemd), and also appended to <site>/logs/hub.log; the proxy's lines go to proxy.log and
the usage service's to usage.log as well. `mlworkshop logs hub|proxy|usage` shows them.

How: just before `up` becomes JupyterHub, it starts this module as a child reading a pipe, and
points its own stdout and stderr at that pipe (`start_tee`). execve keeps the pid, so Ctrl-C,
systemd's signals and the exit status are the hub's as before. Everything the hub and what it
starts (proxy, culler, usage service, fork server) writes passes through the pipe; students'
servers never do (they write their own logs, mlworkshop.userlogs). This process copies each block
to its stdout and to hub.log as it arrives, bytes as they are (nothing parsed, lost or reordered),
and reads until every writer has closed the pipe: it ignores SIGINT, SIGTERM and SIGHUP, which
reach it with the hub's (Ctrl-C in the terminal, `systemctl stop`), so a stopping hub's last lines
are kept. When the terminal goes away it goes on writing the files.

Which lines are the proxy's or the usage service's is read from where a record begins (the
proxy's "... [ConfigProxy] ...", the service's "[I date time usage] ..."); lines that begin no
record (a traceback, a Node error object) belong to the record before them. hub.log always has
everything.

The files are root's (logs/ is 0750), 0640, opened O_APPEND|O_NOFOLLOW like users' logs; each is
rotated to <name>.1 at the hub's start when past 10 MiB.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from ..userlogs import MAX_BYTES, UserLogError, open_user_log, rotated

HUB, PROXY, USAGE = "hub.log", "proxy.log", "usage.log"
LOG_SOURCES = (
    "hub",
    "proxy",
    "usage",
)  # `mlworkshop logs NAME` for these files: reserved, never a user's name
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_RECORD = re.compile(
    rb"^(?:\[[DIWEC] \d{4}-\d\d-\d\d \d\d:\d\d:\d\d[.,]\d+ (?P<name>\S+?)[ \]]"
    rb"|\S+ \[(?P<proxy>ConfigProxy)\] )"
)


def source_of(line: bytes, previous: str | None) -> str | None:
    """The file (besides hub.log) a line of the hub's output also goes to: PROXY, USAGE or None;
    a line that begins no record goes where the one before it went."""
    match = _RECORD.match(line)
    if not match:
        return previous
    if match.group("proxy"):
        return PROXY
    return USAGE if match.group("name") == b"usage" else None


def rotate(logs: Path, max_bytes: int = MAX_BYTES, busy: tuple[str, ...] = ()) -> None:
    """Move each log over max_bytes to `.1`, except those named in `busy`: a process that
    outlives the hub still appends to it (the kept proxy, hub/kept_proxy.py), and would go on
    writing into the moved file, then into a deleted one at the next move."""
    for name in (HUB, PROXY, USAGE):
        if name in busy:
            continue
        path = logs / name
        try:
            if path.stat().st_size > max_bytes and path.is_file() and not path.is_symlink():
                os.replace(path, rotated(path))
        except OSError:
            pass


class Tee:
    """Copies blocks to `out` and the log files; lines sorted into proxy.log and usage.log."""

    def __init__(self, logs: Path, out: int | None):
        self.out = out
        self.files: dict[str, int] = {}
        self.problems: list[str] = []
        for name in (HUB, PROXY, USAGE):
            try:
                self.files[name] = open_user_log(logs / name)
            except (UserLogError, OSError) as exc:
                self.problems.append(f"{logs / name}: {exc}")
        self.partial = b""
        self.current: str | None = None

    def _write(self, fd: int | None, data: bytes) -> bool:
        try:
            while data and fd is not None:
                data = data[os.write(fd, data) :]
            return True
        except OSError:
            return False

    def feed(self, data: bytes) -> None:
        if not self._write(self.out, data):
            self.out = None  # the terminal is gone: the files go on
        self._write(self.files.get(HUB), data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            self._sort(line + b"\n")

    def _sort(self, line: bytes) -> None:
        self.current = source_of(line, self.current)
        if self.current:
            self._write(self.files.get(self.current), line)

    def close(self) -> None:
        if self.partial:
            self._sort(self.partial + b"\n")
            self.partial = b""
        for fd in self.files.values():
            os.close(fd)


def ignore_stop_signals() -> None:
    """Set in the tee's child before exec (an ignored signal stays ignored across execve, and
    Python then installs no KeyboardInterrupt handler): a Ctrl-C while its interpreter starts
    must not end it either."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def run(logs: Path, source: int = 0, out: int = 1) -> None:
    """Read `source` until every writer has closed it (the tee process's main loop)."""
    ignore_stop_signals()
    tee = Tee(logs, out)
    for problem in tee.problems:
        tee.feed(f"mlworkshop: the hub's output is not kept in {problem}\n".encode())
    while True:
        try:
            data = os.read(source, 65536)
        except InterruptedError:
            continue
        if not data:
            break
        tee.feed(data)
    tee.close()


def start_tee(logs: Path, busy: tuple[str, ...] = ()) -> str | None:
    """Point this process's stdout and stderr (and so the hub's, after execve) at a tee into
    <logs>/hub.log. None, or why the output goes only where it went before. `busy`: logs not to
    rotate (rotate())."""
    rotate(logs, busy=busy)
    read_end, write_end = os.pipe()
    try:
        subprocess.Popen(
            [sys.executable, "-m", "mlworkshop.hub.hublog", str(logs)],
            stdin=read_end,
            close_fds=True,
            cwd="/",
            preexec_fn=ignore_stop_signals,
        )
    except OSError as exc:
        os.close(read_end)
        os.close(write_end)
        return f"the hub's output is not kept in {logs / HUB}: {exc}"
    os.close(read_end)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    os.close(write_end)
    return None


if __name__ == "__main__":
    run(Path(sys.argv[1]))
