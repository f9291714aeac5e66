"""Removing a user for good, as root: every process of their system account, the account itself,
and (when asked) their files.

A removed account must not live on: a detached process would keep its uid's access, the fork
server would still fork for an existing account, and a new account given the same uid would hand
the old person the new one's files. So every process of the uid is killed (not just the server),
then the account is deleted, with its uid kept in the site's high-water mark so it is never handed
out again (hub/workspace.py). Each function returns what it could not do, in words an admin can
act on; nothing is silently skipped.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

from .workspace import remember_ids

LOWEST_USER_UID = (
    1000  # below: system accounts, never a student's (a mistaken prefix must not kill them)
)


def live_processes(uid: int) -> list[psutil.Process]:
    """Processes with uid as real, effective or saved uid (zombies are dead already)."""
    found = []
    for proc in psutil.process_iter(["uids", "status"]):
        uids = proc.info["uids"]
        if uids and uid in uids and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


KILL_ALL = (
    "import os\ntry:\n    os.kill(-1, 9)\nexcept ProcessLookupError:\n    pass  # all gone already"
)


class CannotKill(RuntimeError):
    """The process that should send the signal as the account did not run."""


def end_processes(uid: int, gid: int, rounds: int = 50) -> list[psutil.Process]:
    """SIGKILL every process of uid; returns those still alive afterwards.

    The signal is sent by a process that has become the uid and calls kill(-1): the kernel then
    reaches every process that uid may signal in one sweep, so a process forking as fast as it
    can has no child left behind (a list of pids read first and killed one by one would).
    """
    for _ in range(rounds):
        if not live_processes(uid):
            return []
        result = subprocess.run(
            [sys.executable, "-I", "-S", "-c", KILL_ALL],
            user=uid,
            group=gid,
            extra_groups=[],
            cwd="/",
            env={},
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            raise CannotKill(
                f"{sys.executable} as uid {uid} failed: {result.stderr.strip()[-300:] or result.returncode}"
            )
        deadline = time.monotonic() + 1
        while live_processes(uid) and time.monotonic() < deadline:
            time.sleep(0.02)  # SIGKILL is delivered, not waited for: give the kernel a moment
    return live_processes(uid)


def remove_system_account(account: str, state_dir: Path) -> list[str]:
    """End every process of the account, then delete it (its files stay where they are). Not
    root: a hub that is not root never makes accounts, so one of that name is not this site's."""
    if os.geteuid() != 0:
        return []
    try:
        entry = pwd.getpwnam(account)
    except KeyError:
        return []  # never made (docker backend), or removed already
    if entry.pw_uid < LOWEST_USER_UID:
        return [
            f"{account} has uid {entry.pw_uid}, a system account's: not touched. Check spawner.local.user_prefix."
        ]
    remember_ids(state_dir, entry.pw_uid, entry.pw_gid)
    try:
        left = end_processes(entry.pw_uid, entry.pw_gid)
    except (CannotKill, OSError, subprocess.SubprocessError) as exc:
        return [f"the processes of {account} could not be ended ({exc}); the account is kept."]
    if left:
        listed = ", ".join(f"{p.pid} ({p.info.get('status')})" for p in left[:10])
        return [
            f"processes of {account} could not be ended: {listed}; the account is kept. "
            f"Find out why (`ps -u {entry.pw_uid}`), then run the same command again."
        ]
    result = subprocess.run(["userdel", account], capture_output=True, text=True)
    if result.returncode != 0:
        return [f"`userdel {account}` failed: {result.stderr.strip() or result.returncode}"]
    return []


def delete_tree(path: Path) -> list[str]:
    """Delete a user's folder; every entry that could not be deleted, with why.

    shutil.rmtree works through fds opened without following links on Linux, so a link the
    user planted is deleted itself, never what it points at; nothing is chown'd or chmod'ed."""
    if not os.path.lexists(path):
        return []
    assert shutil.rmtree.avoids_symlink_attacks
    problems: list[str] = []

    def failed(_function, name, exc_info) -> None:
        exc = exc_info[1]
        problems.append(f"{name}: {getattr(exc, 'strerror', None) or exc}")

    shutil.rmtree(path, onerror=failed)
    return problems
