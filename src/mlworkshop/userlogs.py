"""Per-user log files: where a user's server and kernels write, never the hub's own log.

A server once inherited the hub's stdout and stderr, so a student's kernel could write a forged
"Admin prof: approve mallory" line into the hub's log, or ftruncate() it to nothing (and with
`mlworkshop up` in a terminal, those descriptors were root's terminal). Now root opens
<site>/logs/users/<name>.log and that file, and nothing else of the hub's, becomes the server's
fds 1 and 2 (stdin is /dev/null); its kernels get the server's fds 1 and 2, so they write there
too. `mlworkshop logs NAME` shows it.

The folder is root's (0750): a student cannot open their log by its path, replace it with a
link, or read anyone else's. They hold it only as their fds 1 and 2, opened O_APPEND, so what
they write is added at the end; they *can* ftruncate() their own log through that fd. That is
accepted: it is their own output, and nothing of the hub's or another user's is in it.

Rotation is deliberately simple: when a server starts and its log has grown past MAX_BYTES, the
log becomes <name>.log.1 (replacing the previous one) and a new log is begun. A server that
writes without end while running is not cut off until its next start.

Used by the hub (which may run as an ordinary user in development: then its own files) and by
the fork server, which imports nothing of the hub.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_BYTES = 10 * 1024 * 1024
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY


class UserLogError(OSError):
    """A user's log cannot be used safely; str() says what to fix."""


def users_log_dir(logs: Path) -> Path:
    return Path(logs) / "users"


def user_log_path(logs: Path, name: str) -> Path:
    """<logs>/users/<name>.log. Names are hub usernames (mlworkshop.names): never a path."""
    if not name or "/" in name or name.startswith(".") or "\0" in name:
        raise UserLogError(f"{name!r} cannot name a log file")
    return users_log_dir(logs) / f"{name}.log"


def rotated(path: Path) -> Path:
    return path.with_name(path.name + ".1")


def prepare_user_log(logs: Path, name: str, max_bytes: int = MAX_BYTES) -> Path:
    """Before a user's server starts (as the hub's user, root for a real class): the folder
    exists, is ours and only ours to write; a log past max_bytes is rotated. Returns its path."""
    folder = users_log_dir(logs)
    folder.mkdir(mode=0o750, parents=True, exist_ok=True)
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise UserLogError(
            f"{folder} is not a folder owned by the hub's user: remove it and restart the hub"
        )
    if stat.S_IMODE(st.st_mode) != 0o750:
        os.chmod(folder, 0o750, follow_symlinks=False)
    path = user_log_path(logs, name)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    if not stat.S_ISREG(st.st_mode):
        raise UserLogError(f"{path} is not a regular file: remove it and start the server again")
    if st.st_size > max_bytes:
        os.replace(path, rotated(path))
    return path


def open_user_log(path: str | os.PathLike) -> int:
    """A new descriptor (close-on-exec) appending to the log, created 0640 if missing. Never
    follows a link and never opens anything but a regular file."""
    try:
        fd = os.open(path, _FLAGS, 0o640)
    except OSError as exc:
        raise UserLogError(f"cannot open the user log {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UserLogError(f"{path} is not a regular file")
        if stat.S_IMODE(st.st_mode) != 0o640:
            os.fchmod(fd, 0o640)  # the creator's umask may have narrowed it; never wider
    except BaseException:
        os.close(fd)
        raise
    return fd


def redirect_output(path: str | os.PathLike | None) -> None:
    """In a process about to become a user's (still root): fds 1 and 2 become the user's log,
    or /dev/null without one, so no descriptor of the hub's stdout or stderr survives."""
    if path:
        fd = open_user_log(path)
    else:
        fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    for target in (1, 2):
        os.dup2(fd, target)  # inheritable, as stdout and stderr must be
    os.close(fd)
