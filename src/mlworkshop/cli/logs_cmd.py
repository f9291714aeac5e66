"""`mlworkshop logs NAME`: what a user's server and kernels wrote (<site>/logs/users/<name>.log).

Their output never reaches the hub's own log (mlworkshop.userlogs says why), so this is where an
admin looks when a student's server will not start or a kernel dies. The text is the student's:
it is printed as plain text with control characters shown escaped, so a log cannot recolour,
retitle or rewrite the admin's terminal, and no console markup in it is interpreted.

Wire it with `app.command("logs")(logs)` in cli/main.py. Logs that are not a user's (the hub's,
the proxy's, the usage service's, kept by hub/hublog.py) are in SOURCES, looked up before user names.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from ..config import load_config
from ..hub.hublog import HUB, PROXY, USAGE
from ..names import BadUsername, normalize_username
from ..site import Site, resolve_site
from ..userlogs import rotated, user_log_path

# name -> the file it shows, for logs that are not a user's: the hub's output (everything the hub,
# its proxy and services wrote) and the proxy's and usage service's lines of it (hub/hublog.py).
# These names are reserved: nobody can sign up with them (hub/configure.py LOG_SOURCES).
SOURCES: dict[str, Callable[[Site], Path]] = {
    "hub": lambda s: s.logs / HUB,
    "proxy": lambda s: s.logs / PROXY,
    "usage": lambda s: s.logs / USAGE,
}
FOLLOW_INTERVAL = 0.5  # seconds between looks for new output with --follow
_BLOCK = 64 * 1024
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class LogUnavailable(RuntimeError):
    """A message for the admin (the CLI's main() prints it and exits with status 2)."""


def safe_text(data: bytes) -> str:
    """Bytes of a log as text fit for a terminal: undecodable bytes replaced, control characters
    (escape sequences, carriage returns) shown as \\xNN; newlines and tabs kept."""
    return _CONTROL.sub(
        lambda m: f"\\x{ord(m.group()):02x}", data.decode("utf-8", errors="replace")
    )


def tail_bytes(path: Path, lines: int) -> tuple[bytes, int]:
    """The last `lines` lines of a file (all of it for 0), reading only as much as they need,
    and the size they end at (where --follow goes on from)."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if lines <= 0:
            f.seek(0)
            return f.read(size), size
        data, pos = b"", size
        while pos > 0 and data.count(b"\n") <= lines:
            step = min(_BLOCK, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    body = data[:-1] if data.endswith(b"\n") else data
    kept = body.split(b"\n")[-lines:]
    return b"\n".join(kept) + (b"\n" if data.endswith(b"\n") else b""), size


def last_lines(path: Path, lines: int) -> tuple[bytes, int]:
    """The last lines of a log, reaching into the rotated <name>.log.1 when the current one is
    shorter, and where in the current one they end."""
    current, end = tail_bytes(path, lines) if path.exists() else (b"", 0)
    old = rotated(path)
    missing = lines - current.count(b"\n") if lines > 0 else 1
    if missing > 0 and old.exists():
        return tail_bytes(old, missing if lines > 0 else 0)[0] + current, end
    return current, end


def resolve_log(s: Site, who: str) -> tuple[str, Path]:
    """(what it is, its path) for a source name or a user's name; LogUnavailable if there is none."""
    if who in SOURCES:
        path = SOURCES[who](s)
        if not (path.exists() or rotated(path).exists()):
            raise LogUnavailable(
                f"No {who} log yet ({path}): it is written while the hub runs, from its next "
                "`mlworkshop up` on."
            )
        return who, path
    try:
        name = normalize_username(who)
    except BadUsername as exc:
        raise LogUnavailable(str(exc)) from None
    path = user_log_path(s.logs, name)
    if path.exists() or rotated(path).exists():
        return name, path
    if not _is_user(s, name):
        raise LogUnavailable(
            f"No user named {name!r} (no account, no files, no log). See `mlworkshop user list`."
        )
    raise LogUnavailable(
        f"{name} has no log yet: it is written from their server's next start on ({path})."
    )


def _is_user(s: Site, name: str) -> bool:
    if (s.users / name).exists():
        return True
    from ..accounts.store import AccountStore

    cfg = load_config(s.root)
    return AccountStore(s.db_url(cfg), cfg.auth.password_hash_cost).get(name) is not None


def follow(
    path: Path, position: int, write: Callable[[str], None], interval: float = FOLLOW_INTERVAL
) -> None:
    """Print what is appended from `position` on, until interrupted. A log that was rotated (a
    new file at the path) or truncated is read again from its start."""
    identity = _identity(path)
    while True:
        time.sleep(interval)
        now = _identity(path)
        if now is None:
            continue
        if now[:2] != (identity or now)[:2] or now[2] < position:
            position = 0
        identity = now
        if now[2] > position:
            with open(path, "rb") as f:
                f.seek(position)
                data = f.read()
            position += len(data)
            write(safe_text(data))


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino, st.st_size


def logs(
    who: Annotated[
        str,
        typer.Argument(
            metavar="hub|proxy|usage|USER",
            help="hub: everything the hub wrote; proxy or "
            "usage: those helpers' lines of it; a user's name: their server and kernel output.",
        ),
    ],
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing what is written (Ctrl-C stops).")
    ] = False,
    lines: Annotated[
        int,
        typer.Option("--lines", "-n", min=0, help="How many of the last lines to show (0: all)."),
    ] = 50,
    site: Annotated[
        Path | None,
        typer.Option(
            "--site",
            help="Site folder. Default: $MLWORKSHOP_SITE, else ./site (or /srv/mlworkshop as root).",
        ),
    ] = None,
) -> None:
    """Show the hub's, the proxy's or the usage service's log, or a user's server and kernel output
    (their log: never part of the hub's own)."""
    s = resolve_site(site)
    if not s.config_file.exists():
        raise LogUnavailable(
            f"No site at {s.root} (no {s.config_file.name}). Create it with `mlworkshop init --site {s.root}`."
        )
    _, path = resolve_log(s, who)
    write = _writer()
    text, end = last_lines(path, lines)
    write(safe_text(text))
    if follow_:
        try:
            follow(path, end, write)
        except KeyboardInterrupt:
            pass


def _writer() -> Callable[[str], None]:
    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    return write
