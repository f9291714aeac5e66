"""Per-user workspaces and the system accounts that own them.

What a user sees in JupyterLab (their server's root is <site>/users/<name>):
    work/         private (0700, owned by the user's account)
    lessons/ datasets/ models/  links to shared content: owned by root and the admin group,
                  so students can read but writing fails for real (permissions, not convention)
    submissions/  link to <site>/submissions/<name> (the user's own hand-in folder; group = admin
                  group, 2750, so admins read every student's work), or to all of <site>/submissions
                  for admins

With the hub running as root, each hub user gets an account <prefix><name> and a 0700 home.
Without root nothing can be isolated: everything belongs to the hub's user (the hub warns).

Root prepares a home its student can write to, on every start. So root never changes the owner
or mode of an entry the student could have replaced: the links it makes are never chown'd (a
hard link in their place is the linked file itself), and a folder is changed only through an fd
opened without following links, after checking what it is and whom it belongs to.

A new account never gets an old one's uid (this site's highest uid ever handed out is kept in
<site>/state/uid-high-water) nor its files: a home or hand-in folder left by a removed account
of the same name is moved to <site>/removed/ before the new account's server starts.
"""

from __future__ import annotations

import errno
import fcntl
import grp
import os
import pwd
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import safewalk
from ..site import CONTENT_KINDS

UID_HIGH_WATER = "uid-high-water"


class WorkspaceError(RuntimeError):
    """str() says what failed and what an admin can do about it."""


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: Path


@dataclass(frozen=True)
class Workspace:
    home: Path
    account: Account | None  # None: the hub is not root, servers run as the hub's own user


def _run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise WorkspaceError(
            f"`{' '.join(cmd)}` failed: {result.stderr.strip() or result.returncode}"
        )


def ensure_group(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        _run(["groupadd", "--force", name])
        return grp.getgrnam(name).gr_gid


@contextmanager
def _high_water(state_dir: Path) -> Iterator[list[int]]:
    """The highest uid or gid this site ever handed out, locked while the caller reads and raises
    it (servers start in threads, and `user remove` runs beside the hub). Yields [value]."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(
        state_dir / UID_HIGH_WATER, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
    )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        text = os.read(fd, 64).decode(errors="replace").strip()
        mark = [int(text) if text.isdigit() else 0]
        before = mark[0]
        yield mark
        if mark[0] != before:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{mark[0]}\n".encode(), 0)
            os.fsync(fd)
    finally:
        os.close(fd)


def remember_ids(state_dir: Path, *ids: int) -> None:
    """Raise the high-water mark to ids (an account about to be deleted, made before the mark)."""
    with _high_water(state_dir) as mark:
        mark[0] = max(mark[0], *ids)


def ensure_account(name: str, home: Path, state_dir: Path) -> Account:
    """The system account, made if missing (no login password, bash shell, own group), with a uid
    and gid above every one this site handed out before: a removed account's files (and any
    process that escaped its removal) must never belong to a new person."""
    try:
        entry = pwd.getpwnam(name)
        if Path(entry.pw_dir) != home:
            _run(["usermod", "--home", str(home), name])
            entry = pwd.getpwnam(name)
    except KeyError:
        with _high_water(state_dir) as mark:
            floor = (
                ["-K", f"UID_MIN={mark[0] + 1}", "-K", f"GID_MIN={mark[0] + 1}"] if mark[0] else []
            )
            _run(
                [
                    "useradd",
                    *floor,
                    "--no-create-home",
                    "--home-dir",
                    str(home),
                    "--shell",
                    "/bin/bash",
                    "--user-group",
                    "--comment",
                    "mlworkshop user",
                    name,
                ]
            )
            entry = pwd.getpwnam(name)
            mark[0] = max(mark[0], entry.pw_uid, entry.pw_gid)
    return Account(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


def set_group_membership(account: str, group: str, member: bool) -> None:
    members = grp.getgrnam(group).gr_mem
    if member and account not in members:
        _run(["usermod", "--append", "--groups", group, account])
    elif not member and account in members:
        _run(["gpasswd", "--delete", account, group])


def set_device_groups(account: str, device_groups: set[str], granted: set[str]) -> None:
    """Membership of the device groups (video, render, HwHiAiUser...) exactly as granted, so a
    server without devices cannot open them; groups this machine does not have are skipped."""
    for group in device_groups:
        try:
            grp.getgrnam(group)
        except KeyError:
            continue
        set_group_membership(account, group, group in granted)


def _link(path: Path, target: Path) -> None:
    """Point path at target, replacing an old link (never a real file or folder)."""
    if path.is_symlink():
        if Path(os.readlink(path)) == target:
            return
        path.unlink()
    elif path.exists():
        return  # the user made something of their own there: leave it
    path.symlink_to(target, target_is_directory=True)


def _own(path: Path, uid: int, gid: int, mode: int, owners: tuple[int, ...] | None = None) -> bool:
    """Owner and mode of a folder, never through a link: this runs as root, and users (work/ in
    their home) or admins (content/*) can replace a folder by a link to anything. The folder is
    opened once (O_NOFOLLOW) and changed through that fd, so it cannot be swapped between the
    check and the change. Anything but a real folder (a link, a file, a hard link to someone's
    file) is left as it is, and so is a folder owned by anyone not in `owners` (None: anyone):
    a student's home holds only what root made there or what is theirs. True if it was done."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return False
        raise
    try:
        st = os.fstat(fd)
        if owners is not None and st.st_uid not in owners:
            return False
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.fchown(fd, uid, gid)
        if stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
        return True
    finally:
        os.close(fd)


def prepare_shared_content(content: Path, submissions: Path, admin_group: str | None) -> None:
    """Shared folders: group-writable by admins, read-only for everyone else, all the way down
    (so admins can edit the lessons `init` copied in). Entries already right are only stat'ed."""
    content.mkdir(parents=True, exist_ok=True)
    submissions.mkdir(parents=True, exist_ok=True)
    if admin_group is None:
        return
    gid = ensure_group(admin_group)
    for folder in [content] + [content / kind for kind in CONTENT_KINDS]:
        folder.mkdir(exist_ok=True)
        _own(folder, 0, gid, 0o2775)
    for kind in CONTENT_KINDS:
        for _path, fd in safewalk.entries(content / kind):
            _share_with_admins(fd, gid)
    _own(submissions, 0, gid, 0o2755)


def _share_with_admins(fd: int, gid: int) -> None:
    """Group = admins, group-writable, not writable by others; owner and read bits kept. Admins
    (and a student, where an admin slipped) can plant entries here, so this gets an O_PATH fd the
    walk opened relative to its folder without following a link (safewalk.entries), and changes
    only a real folder or a file with no other name, through that fd (a symbolic link, a hard
    link to a file elsewhere, a device or a pipe is left alone)."""
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        mode = 0o2775
    elif stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
        mode = ((st.st_mode & 0o7777) | 0o060) & ~0o002
    else:
        return
    safewalk.change(fd, st, gid, mode)


def _retire_if_foreign(path: Path, uid: int, removed: Path) -> None:
    """A folder of a removed account of the same name (owned by neither root nor this account)
    goes to <site>/removed/<name>-uid<old uid>/, kept for the admins and never given to the new
    account. users/ and submissions/ are root's, so a student cannot plant one."""
    try:
        owner = path.lstat().st_uid
    except FileNotFoundError:
        return
    if owner in (0, uid):
        return
    removed.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder = removed / f"{path.name}-uid{owner}"
    folder.mkdir(mode=0o700, exist_ok=True)
    target = folder / path.parent.name  # "users" or "submissions"
    if target.exists():
        target = folder / f"{path.parent.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        os.rename(path, target)
    except OSError as exc:
        raise WorkspaceError(
            f"{path} belongs to a removed account (uid {owner}) and could not be moved "
            f"to {target}: {exc.strerror}. Move it away by hand."
        ) from None


def _real_folder(path: Path) -> None:
    """A folder at path, made by root if missing. Something else the user put there (a file, a
    hard link) is renamed aside, never opened or changed; a symbolic link is the user's own
    choice and left as it is (root never follows it)."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISDIR(st.st_mode) and not stat.S_ISLNK(st.st_mode):
        os.rename(path, path.with_name(f"{path.name}.moved-{time.strftime('%Y%m%d-%H%M%S')}"))
        st = None
    if st is None:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass  # the user raced us: _own() checks what is there now


def prepare_workspace(
    users_dir: Path,
    submissions: Path,
    content: Path,
    username: str,
    is_admin: bool,
    account_name: str | None,
    admin_group: str,
    state_dir: Path | None = None,
) -> Workspace:
    """Everything a user's server needs on disk, made or repaired on every start. Idempotent.
    state_dir: where the uid high-water mark lives (default: <site>/state beside users_dir)."""
    home = users_dir / username
    own_submissions = submissions / username
    account = None
    if account_name is not None:
        admin_gid = ensure_group(admin_group)
        account = ensure_account(account_name, home, state_dir or users_dir.parent / "state")
        for folder in (home, own_submissions):
            _retire_if_foreign(folder, account.uid, users_dir.parent / "removed")
    home.mkdir(parents=True, exist_ok=True)
    _real_folder(home / "work")
    own_submissions.mkdir(parents=True, exist_ok=True)
    for kind in CONTENT_KINDS:
        _link(home / kind, content / kind)
    _link(home / "submissions", submissions if is_admin else own_submissions)
    if account is None:
        return Workspace(home, None)

    set_group_membership(account_name, admin_group, is_admin)
    mine = (0, account.uid)  # made by root just now, or already theirs
    if not _own(home, account.uid, account.gid, 0o700, mine):
        raise WorkspaceError(
            f"{home} is not a folder of {account_name} or root: move it away by hand."
        )
    _own(home / "work", account.uid, account.gid, 0o700, mine)  # not a folder: the user's own doing
    if not _own(own_submissions, account.uid, admin_gid, 0o2750, mine):
        raise WorkspaceError(
            f"{own_submissions} is not a folder of {account_name} or root: move it away by hand."
        )
    # The links stay root's: nothing here is chown'd, since in a folder the user can write to,
    # what is at a link's name by now may be a hard link to any file (issue 11).
    return Workspace(home, account)
