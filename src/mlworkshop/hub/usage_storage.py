"""Where the usage service keeps its SQLite database, and who owns it.

The usage service runs as an account of its own (hub/service_accounts.py), and SQLite in WAL mode
creates and removes files next to the database, so the account needs a folder it may write:
<site>/usage/ (0700, that account's). Not <site>/state/, which holds the hub's own database
(password hashes, token hashes) and stays root's alone. Root makes and hands over the folder
itself: the site root is root's (0755), so nobody else can put a link where the folder goes, and
inside it root changes the owner only of the database's own plain, single-link files, through
descriptors opened without following links. Root makes the database file itself (empty), so root
processes that open it later, the hub's spawner hooks and the CLI, never make it root's; and the
side files SQLite creates as root get the database file's owner.

Sites made before this kept the database at <site>/state/usage.sqlite; it is used there until the
next `mlworkshop up` moves it into <site>/usage/ (after a checkpoint, so nothing is left in its
write-ahead log).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..config import MLWorkshopConfig
from ..site import USAGE_DB_NAME, Site

DB_NAME = USAGE_DB_NAME
DB_FILES = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal")


class UsageStorageError(RuntimeError):
    """str() says what is wrong and what a lab admin can do about it."""


def prepare_usage_storage(
    site: Site, cfg: MLWorkshopConfig, owner: tuple[int, int] | None
) -> list[str]:
    """Make <site>/usage/ (owned by `owner` (uid, gid) when given: a root hub), move an old
    database into it, and give the database's files to `owner`. Returns what it did.
    Nothing to do for a PostgreSQL usage database (usage.db_url)."""
    if cfg.usage.db_url:
        return []
    done: list[str] = []
    folder = site.usage_dir
    try:
        os.mkdir(folder, 0o700)
        done.append(f"made {folder}")
    except FileExistsError:
        pass
    try:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise UsageStorageError(
            f"{folder} must be a folder (not a link or a file): {exc.strerror}. "
            "Move it away and start the hub again."
        ) from None
    try:
        done += _move_legacy(site, dir_fd)
        _create_empty(dir_fd)
        if owner is not None:
            os.fchown(dir_fd, *owner)
            for name in DB_FILES:
                _hand_over(folder, dir_fd, name, owner)
        os.fchmod(dir_fd, 0o700)
    finally:
        os.close(dir_fd)
    return done


def _move_legacy(site: Site, dir_fd: int) -> list[str]:
    """The old database and its side files, from <site>/state/ (root's alone) into the folder;
    never over a database already there."""
    legacy = site.state / DB_NAME
    if not legacy.exists():
        return []
    if _exists(dir_fd, DB_NAME):
        return [f"left {legacy} alone: {site.usage_dir / DB_NAME} is the usage database now"]
    _checkpoint(legacy)
    for name in reversed(DB_FILES):  # the database itself last: until then the old place is used
        source = site.state / name
        if not source.exists():
            continue
        try:
            os.rename(source, name, dst_dir_fd=dir_fd)
        except OSError as exc:
            hint = (
                " (another filesystem: move it by hand while the hub is stopped)"
                if exc.errno == errno.EXDEV
                else ""
            )
            raise UsageStorageError(
                f"Could not move {source} into {site.usage_dir}: {exc.strerror}{hint}."
            ) from None
    return [f"moved the usage database {legacy} to {site.usage_dir / DB_NAME}"]


def _checkpoint(path: Path) -> None:
    """Everything in the write-ahead log into the database file first, so no record depends on
    the side files arriving with it."""
    import sqlite3

    try:
        db = sqlite3.connect(path)
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise UsageStorageError(
            f"Could not open the usage database {path} to move it: {exc}. "
            "Is it still in use? Stop what uses it and start the hub again."
        ) from None


def _create_empty(dir_fd: int) -> None:
    """An empty database file (SQLite takes an empty file for an empty database), so that its
    owner is the usage account however it gets opened first: were it the hub's spawner hooks or
    the CLI, as root, it would be root's and the service could not write it."""
    try:
        os.close(
            os.open(
                DB_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd
            )
        )
    except FileExistsError:
        pass


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def _hand_over(folder: Path, dir_fd: int, name: str, owner: tuple[int, int]) -> None:
    """Give one database file to the owner: only a plain file with one link, opened without
    following links, owned by root (made by the CLI or an older hub) or by the owner already."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageStorageError(
            f"{folder / name} is not a plain file ({exc.strerror}): move it away and "
            "start the hub again."
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or info.st_uid not in (0, owner[0]):
            raise UsageStorageError(
                f"{folder / name} is not the usage database's own file (a link, another owner or not a plain "
                "file): move it away and start the hub again."
            )
        if (info.st_uid, info.st_gid) != owner:
            os.fchown(fd, *owner)
    finally:
        os.close(fd)
