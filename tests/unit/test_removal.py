"""Removing a user's system account and files as root (hub/removal.py), with real accounts and
processes. Needs root: only root can make accounts and run processes as them."""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
import tempfile
from pathlib import Path

import pytest

from mlworkshop.hub.removal import delete_tree, live_processes, remove_system_account

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="system accounts need root")


@pytest.fixture
def account():
    name = "tr" + secrets.token_hex(3)
    subprocess.run(["useradd", "--no-create-home", "--user-group", name], check=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
        subprocess.run(["userdel", name], capture_output=True)


def test_every_process_of_the_account_ends_and_the_account_goes(account, tmp_path):
    # a process that keeps forking detached children: none may be left behind
    breeder = "while true; do setsid sleep 300 & sleep 0.05; done"
    subprocess.Popen(
        ["runuser", "-u", account.pw_name, "--", "setsid", "sh", "-c", breeder],
        cwd="/",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    subprocess.run(
        ["runuser", "-u", account.pw_name, "--", "setsid", "-f", "sleep", "300"],
        check=True,
        cwd="/",
    )
    assert live_processes(account.pw_uid)
    assert remove_system_account(account.pw_name, tmp_path / "state") == []
    assert live_processes(account.pw_uid) == []
    with pytest.raises(KeyError):
        pwd.getpwnam(account.pw_name)
    high_water = int((tmp_path / "state" / "uid-high-water").read_text())
    assert high_water >= max(account.pw_uid, account.pw_gid)


def test_a_system_uid_is_never_touched(tmp_path):
    problems = remove_system_account("daemon", tmp_path / "state")
    assert len(problems) == 1 and "system account" in problems[0]
    pwd.getpwnam("daemon")


def test_no_account_is_nothing_to_do(tmp_path):
    assert remove_system_account("tr-never-made", tmp_path / "state") == []


def test_delete_tree_reports_what_it_could_not_delete_and_deletes_the_rest():
    root = Path(tempfile.mkdtemp(prefix="mlw-rm-", dir="/tmp"))
    outside = Path(tempfile.mkdtemp(prefix="mlw-keep-", dir="/tmp"))
    try:
        (outside / "keep.txt").write_text("k")
        (root / "a").mkdir()
        (root / "a" / "stuck.txt").write_text("x")
        (root / "b.txt").write_text("y")
        (root / "link").symlink_to(outside)  # deleted itself, never followed
        subprocess.run(["chattr", "+i", str(root / "a" / "stuck.txt")], check=True)
        problems = delete_tree(root)
        assert any(str(root / "a" / "stuck.txt") in p and "not permitted" in p for p in problems), (
            problems
        )
        assert not (root / "b.txt").exists() and not (root / "link").is_symlink()
        assert (outside / "keep.txt").exists()
    finally:
        subprocess.run(["chattr", "-i", str(root / "a" / "stuck.txt")], capture_output=True)
        subprocess.run(["rm", "-rf", str(root), str(outside)])
    assert delete_tree(root) == []  # gone already: nothing to report
