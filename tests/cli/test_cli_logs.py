"""`mlworkshop logs USER`: a user's server and kernel output, as an admin reads it. (That a real
server's output lands there is tests/attacks/test_attack_hub_log.py.)"""

from __future__ import annotations

import selectors
import signal
import subprocess
import time

from mlworkshop.accounts.store import AccountStore
from mlworkshop.config import load_config
from mlworkshop.site import Site
from mlworkshop.userlogs import prepare_user_log, rotated

from .clirun import MLW, assert_refused, mlw, mlw_here


def _log(site, name: str, data: bytes):
    path = prepare_user_log(Site(site).logs, name)
    path.write_bytes(data)
    return path


def test_shows_the_last_lines(site):
    _log(site, "alice", b"".join(b"line %d\n" % i for i in range(1, 101)))
    shown = mlw_here(site, "logs", "alice")
    assert shown.returncode == 0, shown
    assert shown.stdout.splitlines() == [f"line {i}" for i in range(51, 101)]
    assert mlw_here(site, "logs", "Alice", "--lines", "2").stdout == "line 99\nline 100\n"
    assert len(mlw_here(site, "logs", "alice", "-n", "0").stdout.splitlines()) == 100


def test_reaches_into_the_rotated_log(site):
    path = _log(site, "alice", b"new 1\nnew 2\n")
    rotated(path).write_bytes(b"old 1\nold 2\nold 3\n")
    assert mlw_here(site, "logs", "alice", "--lines", "4").stdout == "old 2\nold 3\nnew 1\nnew 2\n"
    assert mlw_here(site, "logs", "alice", "--lines", "2").stdout == "new 1\nnew 2\n"
    assert mlw_here(site, "logs", "alice", "--lines", "0").stdout.count("\n") == 5


def test_a_students_bytes_cannot_drive_the_admins_terminal(site):
    _log(site, "alice", b"\x1b]0;pwned\x07\x1b[2Jclear\rover [red]markup[/red] \xff\tok\n")
    shown = mlw_here(site, "logs", "alice")
    assert shown.returncode == 0, shown
    assert shown.stdout == "\\x1b]0;pwned\\x07\\x1b[2Jclear\\x0dover [red]markup[/red] \ufffd\tok\n"


def test_unknown_user_bad_name_and_no_log_yet(site):
    assert_refused(
        mlw_here(site, "logs", "nobody"), "No user named 'nobody'", "mlworkshop user list"
    )
    assert_refused(mlw_here(site, "logs", "../etc"), "not allowed")
    cfg = load_config(site, {})
    AccountStore(Site(site).db_url(cfg)).create("bob", "Bobs-Pass-77", approved=True)
    assert_refused(mlw_here(site, "logs", "bob"), "bob has no log yet", "logs/users/bob.log")


def test_no_site(tmp_path):
    assert_refused(mlw_here(tmp_path / "nothing", "logs", "alice"), "No site at", "mlworkshop init")


def test_follow_prints_what_is_added_then_stops_on_ctrl_c(site):
    path = _log(site, "alice", b"before\n")
    proc = subprocess.Popen(
        [*MLW, "logs", "alice", "--follow", "--site", str(site)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    seen = b""

    def wait_for(text: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 60
        while text not in seen:
            assert time.monotonic() < deadline and selector.select(deadline - time.monotonic()), (
                seen
            )
            seen += (
                proc.stdout.read1(65536)
                if hasattr(proc.stdout, "read1")
                else proc.stdout.read(65536)
            )

    try:
        wait_for(b"before\n")
        with open(path, "ab") as f:
            f.write(b"appended\n")
        wait_for(b"appended\n")
        path.rename(rotated(path))  # the server restarted: a new log at the same path
        path.write_bytes(b"after rotation\n")
        wait_for(b"after rotation\n")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and b"Traceback" not in err, err


def test_is_listed_in_help():
    assert "logs" in mlw(None, "--help").stdout
    assert "--follow" in mlw(None, "logs", "--help").stdout
