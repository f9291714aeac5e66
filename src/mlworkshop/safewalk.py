"""Walking and changing a tree that someone else may be changing, as root, without following a
link they planted.

`up` (hub/workspace.py) and `doctor --fix` (ops/doctor/permissions.py) change the owner and mode
of shared content as root; an admin, or a student where an admin made a mistake, can write
there. A path string is resolved again at every use, so a folder swapped for a symbolic link
between the walk and the change would send root's chmod/chown anywhere (/etc). Here nothing is
used by path below the top: each folder is held open, each entry is opened relative to its
folder's descriptor without following a link (O_PATH | O_NOFOLLOW), checked through that
descriptor and changed through it (/proc/self/fd/N is that very inode), and a folder is listed
and descended into only through "." opened relative to its own descriptor, so whatever is at its
name by then is never looked at. Not os.fwalk: its open of a subfolder follows a link (then
drops what it found), which opens whatever the link points at, a device included.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path


def open_nofollow(name: str, dir_fd: int | None = None) -> int | None:
    """An O_PATH descriptor of name itself (a link stays a link), or None if it is gone."""
    try:
        return os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _listing(fd: int) -> tuple[int, list[str]] | None:
    """A readable descriptor of the folder behind fd and its names; None if it is no folder."""
    try:
        dir_fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
    except (NotADirectoryError, FileNotFoundError, PermissionError):
        return None
    try:
        return dir_fd, sorted(os.listdir(dir_fd))
    except OSError:
        os.close(dir_fd)
        return None


def entries(top: Path, recursive: bool = True) -> Iterator[tuple[str, int]]:
    """(path, O_PATH fd) of `top` and (recursive) everything below it, top first and each folder
    before what is in it, links included (the caller skips them: fstat(fd) says what each is).
    The path is for messages only. Each fd is closed once the caller moves on; a folder is
    descended into after the caller has seen (and maybe changed) it."""
    fd = open_nofollow(str(top))
    if fd is None:
        return
    stack: list[tuple[str, int, Iterator[str]]] = []  # (path, readable fd, names left) per level
    try:
        yield str(top), fd
        if not recursive:
            return
        below = _listing(fd)
        if below is not None:
            stack.append((str(top), below[0], iter(below[1])))
        while stack:
            path, dir_fd, names = stack[-1]
            name = next(names, None)
            if name is None:
                os.close(dir_fd)
                stack.pop()
                continue
            child = open_nofollow(name, dir_fd)
            if child is None:
                continue
            try:
                yield os.path.join(path, name), child
                if stat.S_ISDIR(os.fstat(child).st_mode):
                    below = _listing(child)
                    if below is not None:
                        stack.append((os.path.join(path, name), below[0], iter(below[1])))
            finally:
                os.close(child)
    finally:
        os.close(fd)
        for _path, dir_fd, _names in stack:  # the caller stopped early
            os.close(dir_fd)


def change(fd: int, st: os.stat_result, gid: int | None, mode: int) -> None:
    """Group (None: kept) and mode of the entry behind an O_PATH fd, through that fd: an O_PATH
    fd has no fchown/fchmod, and /proc/self/fd/N is this very inode, not a name to resolve."""
    here = f"/proc/self/fd/{fd}"
    if gid is not None and st.st_gid != gid:
        os.chown(here, -1, gid)
    if stat.S_IMODE(st.st_mode) != mode:
        os.chmod(here, mode)
