"""Per-user log files (mlworkshop.userlogs): where they are, how they are opened and rotated,
and what a process that takes one as its stdout and stderr keeps of its parent's."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from mlworkshop.userlogs import (
    UserLogError,
    open_user_log,
    prepare_user_log,
    rotated,
    user_log_path,
)


def test_path_is_under_logs_users(tmp_path):
    assert user_log_path(tmp_path, "alice") == tmp_path / "users" / "alice.log"
    for bad in ("", "../alice", "a/b", ".hidden", "a\0b"):
        with pytest.raises(UserLogError):
            user_log_path(tmp_path, bad)


def test_prepare_makes_a_private_folder_and_fixes_its_mode(tmp_path):
    path = prepare_user_log(tmp_path, "alice")
    assert path == tmp_path / "users" / "alice.log" and not path.exists()
    assert stat.S_IMODE(os.stat(tmp_path / "users").st_mode) == 0o750
    os.chmod(tmp_path / "users", 0o777)
    prepare_user_log(tmp_path, "alice")
    assert stat.S_IMODE(os.stat(tmp_path / "users").st_mode) == 0o750


def test_prepare_refuses_a_link_for_the_folder_or_the_log(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "users").symlink_to(elsewhere)
    with pytest.raises(UserLogError, match="not a folder"):
        prepare_user_log(logs, "alice")
    (logs / "users").unlink()
    (logs / "users").mkdir()
    (logs / "users" / "alice.log").symlink_to(tmp_path / "target")
    with pytest.raises(UserLogError, match="not a regular file"):
        prepare_user_log(logs, "alice")
    with pytest.raises(UserLogError, match="cannot open"):
        open_user_log(logs / "users" / "alice.log")  # O_NOFOLLOW
    assert not (tmp_path / "target").exists()


def test_open_appends_and_creates_0640(tmp_path):
    path = prepare_user_log(tmp_path, "alice")
    old = os.umask(0o077)
    try:
        fd = open_user_log(path)
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o640
        assert not os.get_inheritable(fd), "close-on-exec until it is made someone's stdout"
        os.write(fd, b"one\n")
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, b"two\n")  # O_APPEND: never over what is there
    finally:
        os.close(fd)
    assert path.read_bytes() == b"one\ntwo\n"


def test_a_large_log_is_rotated_when_the_server_starts(tmp_path):
    path = prepare_user_log(tmp_path, "alice")
    path.write_bytes(b"x" * 100)
    assert (
        prepare_user_log(tmp_path, "alice", max_bytes=100) == path
        and path.read_bytes() == b"x" * 100
    )
    rotated(path).write_bytes(b"older")
    prepare_user_log(tmp_path, "alice", max_bytes=99)
    assert not path.exists() and rotated(path).read_bytes() == b"x" * 100


def test_redirected_child_holds_only_the_log(tmp_path):
    """A child that redirects, then execs: its fds 1 and 2 are the log and nothing of the
    parent's stdout or stderr survives."""
    path = prepare_user_log(tmp_path, "alice")
    code = (
        "import os, sys; from mlworkshop.userlogs import redirect_output; redirect_output(sys.argv[1]); "
        "os.execvp(sys.executable, [sys.executable, '-c', "
        '\'import os; print(sorted(os.listdir("/proc/self/fd")), os.readlink("/proc/self/fd/1")); '
        'import sys; print("to stderr", file=sys.stderr)\'])'
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done
    fds, target = path.read_text().splitlines()[0].rsplit("] ", 1)
    assert fds.lstrip("[").replace("'", "").split(", ")[:3] == ["0", "1", "2"] and target == str(
        path
    )
    assert path.read_text().splitlines()[1] == "to stderr"


def test_redirect_without_a_log_is_devnull(tmp_path):
    code = (
        "import os, sys; from mlworkshop.userlogs import redirect_output; redirect_output(None); "
        "print('lost'); print(os.readlink('/proc/self/fd/1'), os.readlink('/proc/self/fd/2'), file=open(sys.argv[1], 'w'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout == "", done
    assert (tmp_path / "out").read_text().split() == ["/dev/null", "/dev/null"]
