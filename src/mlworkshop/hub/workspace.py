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
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

CONTENT_KINDS = ("lessons", "datasets", "models")


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
        raise WorkspaceError(f"`{' '.join(cmd)}` failed: {result.stderr.strip() or result.returncode}")


def ensure_group(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        _run(["groupadd", "--force", name])
        return grp.getgrnam(name).gr_gid


def ensure_account(name: str, home: Path) -> Account:
    """The system account, made if missing (no login password, bash shell, own group)."""
    try:
        entry = pwd.getpwnam(name)
        if Path(entry.pw_dir) != home:
            _run(["usermod", "--home", str(home), name])
            entry = pwd.getpwnam(name)
    except KeyError:
        _run(["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/bash",
              "--user-group", "--comment", "mlworkshop user", name])
        entry = pwd.getpwnam(name)
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


def _own(path: Path, uid: int, gid: int, mode: int) -> None:
    """Owner and mode of a folder, never through a symbolic link: this runs as root, and users
    (work/ in their home) or admins (content/*) can replace a folder by a link to anything. A
    link is left as it is, and its target untouched. The folder is opened once (O_NOFOLLOW) so
    it cannot be swapped for a link between a check and the change."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and path.is_symlink():
            return
        raise
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
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
        for root, dirs, files in os.walk(content / kind):
            for name in dirs:
                _share_with_admins(Path(root) / name, gid, 0o2775)
            for name in files:
                _share_with_admins(Path(root) / name, gid, None)
    _own(submissions, 0, gid, 0o2755)


def _share_with_admins(path: Path, gid: int, dir_mode: int | None) -> None:
    """Group = admins, group-writable, not writable by others; owner and read bits kept."""
    st = path.lstat()
    if path.is_symlink():
        return
    mode = dir_mode if dir_mode is not None else ((st.st_mode & 0o7777) | 0o060) & ~0o002
    if st.st_gid != gid:
        os.chown(path, -1, gid, follow_symlinks=False)
    if (st.st_mode & 0o7777) != mode:
        os.chmod(path, mode)


def prepare_workspace(
    users_dir: Path, submissions: Path, content: Path, username: str, is_admin: bool,
    account_name: str | None, admin_group: str,
) -> Workspace:
    """Everything a user's server needs on disk, made or repaired on every start. Idempotent."""
    home = users_dir / username
    home.mkdir(parents=True, exist_ok=True)
    (home / "work").mkdir(exist_ok=True)
    own_submissions = submissions / username
    own_submissions.mkdir(parents=True, exist_ok=True)
    for kind in CONTENT_KINDS:
        _link(home / kind, content / kind)
    _link(home / "submissions", submissions if is_admin else own_submissions)
    if account_name is None:
        return Workspace(home, None)

    admin_gid = ensure_group(admin_group)
    account = ensure_account(account_name, home)
    set_group_membership(account_name, admin_group, is_admin)
    _own(home, account.uid, account.gid, 0o700)
    _own(home / "work", account.uid, account.gid, 0o700)
    _own(own_submissions, account.uid, admin_gid, 0o2750)
    for kind in CONTENT_KINDS + ("submissions",):
        os.chown(home / kind, account.uid, account.gid, follow_symlinks=False)
    return Workspace(home, account)
