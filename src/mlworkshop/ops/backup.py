"""`mlworkshop backup`: the whole site in one verified archive, while the hub runs.

What goes in: config, secrets, the hub's and the usage databases (a consistent snapshot of each,
taken while they are written: ops/dbdump.py), content, submissions and every home (unless
homes=False), each member's owner by name, and a manifest with every file's sha256 (format:
ops/archive.py). The archive is written to a hidden file beside the target (0600 from its first
byte) and renamed into place only when complete: a backup that fails or is interrupted never
leaves a file that looks like a backup.

Reading homes as root: a student owns everything inside their home, work/ and submissions/,
and can plant links or swap a folder for a link while we read. So every folder is opened
relative to its parent's descriptor with O_NOFOLLOW, every file with O_NOFOLLOW, and the type
that counts is fstat's of what was opened: a symbolic link is archived as a link (its target
is never read, whatever it names), a FIFO or device is skipped (never opened for reading), and
a file with several links is read as itself (what is there) and archived with its real owner
and mode, so it cannot give a student a copy of anything they could not read before.

Hand-written rather than tarfile.add(): tarfile.add follows the path it is given and stat()s
names, which a student can swap between the stat and the open; here every read goes through
descriptors (tarfile still writes the headers and the data).
"""

from __future__ import annotations

import errno
import grp
import hashlib
import io
import json
import os
import pwd
import socket
import stat
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import MLWorkshopConfig
from ..hub.workspace import UID_HIGH_WATER
from ..site import Site
from . import archive as fmt
from .dbdump import copy_sqlite, pg_dump, sqlite_path

CHUNK = 1 << 20
MAX_DEPTH = 200  # a folder nested deeper than this in a home is skipped (and said so)
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class BackupError(RuntimeError):
    """str() says what failed and what a lab admin can do about it."""


Progress = Callable[[int], None]


@dataclass
class BackupResult:
    path: Path
    files: int = 0
    links: int = 0
    folders: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)  # what was left out, and why
    changed: list[str] = field(default_factory=list)  # files that shrank while read
    timings: dict[str, float] = field(default_factory=dict)  # where the time went


def _owner_names() -> tuple[Callable[[int], str], Callable[[int], str]]:
    users: dict[int, str] = {}
    groups: dict[int, str] = {}

    def user(uid: int) -> str:
        if uid not in users:
            try:
                users[uid] = pwd.getpwuid(uid).pw_name
            except KeyError:
                users[uid] = ""  # nobody here by that number: restore gives it to root
        return users[uid]

    def group(gid: int) -> str:
        if gid not in groups:
            try:
                groups[gid] = grp.getgrgid(gid).gr_name
            except KeyError:
                groups[gid] = ""
        return groups[gid]

    return user, group


class _TimedFile:
    """The archive file on disk; counts bytes and the time spent writing them."""

    def __init__(self, fd: int, timings: dict[str, float]):
        self.fd = fd
        self.timings = timings
        self.written = 0

    def write(self, data: bytes) -> int:
        t = time.perf_counter()
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.written += len(data)
        self.timings["write archive"] += time.perf_counter() - t
        return len(data)


class _TimedGzip(fmt.GzipMembersWriter):
    def __init__(self, raw: _TimedFile, level: int):
        super().__init__(raw, level)
        self.timings = raw.timings

    def write(self, data) -> int:
        t = time.perf_counter()
        start_write = self.timings["write archive"]
        n = super().write(data)
        # compression's own time: the raw writes it triggered are counted there
        self.timings["compress"] += (
            time.perf_counter() - t - (self.timings["write archive"] - start_write)
        )
        return n


class _FileReader:
    """What tarfile copies from: exactly `size` bytes of an open file, hashed on the way. A file
    that shrinks while read (a student truncating it) is padded with zeros to the size its
    header promised, and reported; one that grows is cut at that size."""

    def __init__(self, fd: int, size: int, progress: Progress | None, timings: dict[str, float]):
        self.fd = fd
        self.left = size
        self.sha = hashlib.sha256()
        self.progress = progress
        self.timings = timings
        self.short = False

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        t = time.perf_counter()
        parts = []
        want = n
        while want > 0:
            data = os.read(self.fd, want)
            if not data:
                self.short = True
                parts.append(b"\0" * want)
                break
            parts.append(data)
            want -= len(data)
        data = b"".join(parts) if len(parts) != 1 else parts[0]
        t2 = time.perf_counter()
        self.sha.update(data)
        self.timings["read files"] += t2 - t
        self.timings["sha256"] += time.perf_counter() - t2
        self.left -= len(data)
        if self.progress:
            self.progress(len(data))
        return data


class _Writer:
    def __init__(
        self,
        tar: tarfile.TarFile,
        gz: _TimedGzip,
        level: int,
        result: BackupResult,
        progress: Progress | None,
    ):
        self.tar = tar
        self.gz = gz
        self.level = level
        self.result = result
        self.progress = progress
        self.timings = result.timings
        self.manifest: dict[str, dict] = {}
        self.inodes: dict[tuple[int, int], str] = {}
        self.user, self.group = _owner_names()

    def _info(self, arcname: str, st: os.stat_result) -> tarfile.TarInfo:
        info = tarfile.TarInfo(arcname)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname, info.gname = self.user(st.st_uid), self.group(st.st_gid)
        info.mtime = int(st.st_mtime)
        return info

    def add_bytes(self, arcname: str, data: bytes) -> None:
        info = tarfile.TarInfo(arcname)
        info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
        info.uname = info.gname = "root"
        self.gz.set_level(self.level)
        self.tar.addfile(info, io.BytesIO(data))

    def add_dir_entry(self, arcname: str, st: os.stat_result) -> None:
        info = self._info(arcname, st)
        info.type = tarfile.DIRTYPE
        self.tar.addfile(info)
        self.manifest[arcname] = {"type": "dir"}
        self.result.folders += 1

    def add_fd_file(self, arcname: str, fd: int, st: os.stat_result) -> None:
        """A regular file already open (fd), archived as what fstat says it is."""
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self.inodes:
            info = self._info(arcname, st)
            info.type, info.linkname = tarfile.LNKTYPE, self.inodes[key]
            self.tar.addfile(info)
            self.manifest[arcname] = {"type": "hardlink", "target": info.linkname}
            self.result.links += 1
            return
        if st.st_nlink > 1:
            self.inodes[key] = arcname
        info = self._info(arcname, st)
        info.size = st.st_size
        level = self.level
        if self.level and st.st_size >= 1 << 20:
            try:
                sample = os.pread(fd, fmt.SAMPLE, 0)
            except OSError:
                sample = b""
            if not fmt.compresses(sample):
                level = 0
        self.gz.set_level(level)
        reader = _FileReader(fd, st.st_size, self.progress, self.timings)
        self.tar.addfile(info, reader)
        if reader.short:
            self.result.changed.append(arcname)
        self.manifest[arcname] = {
            "type": "file",
            "size": st.st_size,
            "sha256": reader.sha.hexdigest(),
        }
        self.result.files += 1
        self.result.bytes_in += st.st_size

    def add_path_file(self, arcname: str, path: Path, owner_of: Path | None = None) -> None:
        """A file of ours (a database snapshot): archived with the owner and mode of `owner_of`."""
        fd = os.open(path, OPEN_FLAGS)
        try:
            st = os.fstat(fd)
            if owner_of is not None:
                real = os.stat(owner_of, follow_symlinks=False)
                st = os.stat_result(
                    (
                        real.st_mode,
                        st.st_ino,
                        st.st_dev,
                        1,
                        real.st_uid,
                        real.st_gid,
                        st.st_size,
                        st.st_atime,
                        st.st_mtime,
                        st.st_ctime,
                    )
                )
            self.add_fd_file(arcname, fd, st)
        finally:
            os.close(fd)

    def add_tree(self, arcname: str, path: Path, skip: frozenset[str] = frozenset()) -> None:
        """A folder and everything under it, never following a link (the top folder itself is
        the site's or the admin's: it may be reached through one)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            self._walk(fd, arcname, 0, skip)
        finally:
            os.close(fd)

    def _walk(self, fd: int, arcname: str, depth: int, skip: frozenset[str] = frozenset()) -> None:
        self.add_dir_entry(arcname, os.fstat(fd))
        t = time.perf_counter()
        with os.scandir(fd) as entries:
            names = sorted(entry.name for entry in entries)
        self.timings["walk"] += time.perf_counter() - t
        for name in names:
            if name in skip:
                continue
            child = f"{arcname}/{name}"
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while we looked
            if stat.S_ISLNK(st.st_mode):
                self._add_link(fd, name, child, st)
            elif stat.S_ISDIR(st.st_mode):
                self._descend(fd, name, child, depth)
            elif stat.S_ISREG(st.st_mode):
                self._add_file(fd, name, child)
            else:
                self.result.skipped.append(f"{child} (not a file, folder or link)")

    def _add_link(self, fd: int, name: str, arcname: str, st: os.stat_result) -> None:
        try:
            target = os.readlink(name, dir_fd=fd)
        except OSError:
            return  # replaced while we looked: a later backup gets it
        info = self._info(arcname, st)
        info.type, info.linkname = tarfile.SYMTYPE, target
        self.tar.addfile(info)
        self.manifest[arcname] = {"type": "symlink", "target": target}
        self.result.links += 1

    def _descend(self, fd: int, name: str, arcname: str, depth: int) -> None:
        if depth >= MAX_DEPTH:
            self.result.skipped.append(f"{arcname} (nested more than {MAX_DEPTH} folders deep)")
            return
        try:
            child = os.open(name, DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                # swapped for a link or a file between the listing and the open: take it as it is now
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    return
                if stat.S_ISLNK(st.st_mode):
                    self._add_link(fd, name, arcname, st)
                elif stat.S_ISREG(st.st_mode):
                    self._add_file(fd, name, arcname)
                return
            raise
        try:
            self._walk(child, arcname, depth + 1)
        finally:
            os.close(child)

    def _add_file(self, fd: int, name: str, arcname: str) -> None:
        try:
            file_fd = os.open(name, OPEN_FLAGS | os.O_NOATIME, dir_fd=fd)
        except PermissionError:
            file_fd = os.open(name, OPEN_FLAGS, dir_fd=fd)  # O_NOATIME only for the owner (or root)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # became a link since the listing
                try:
                    self._add_link(
                        fd, name, arcname, os.stat(name, dir_fd=fd, follow_symlinks=False)
                    )
                except FileNotFoundError:
                    pass
                return
            if exc.errno == errno.ENOENT:
                return
            raise
        try:
            st = os.fstat(file_fd)
            if not stat.S_ISREG(st.st_mode):
                self.result.skipped.append(f"{arcname} (not a regular file)")
                return
            self.add_fd_file(arcname, file_fd, st)
        finally:
            os.close(file_fd)


def tree_size(path: Path) -> int:
    """Bytes of the regular files under a folder (links not followed): the progress bar's total."""
    total = 0
    for _root, _dirs, files, dfd in os.fwalk(path, follow_symlinks=False):
        for name in files:
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def site_accounts(site: Site, cfg: MLWorkshopConfig) -> list[dict]:
    """The system accounts of the site's users (one per home), by name, with admin membership."""
    prefix = cfg.spawner.local.user_prefix
    try:
        admins = set(grp.getgrnam(cfg.spawner.local.admin_group).gr_mem)
    except KeyError:
        admins = set()
    accounts = []
    if site.users.is_dir():
        for home in sorted(site.users.iterdir()):
            try:
                pwd.getpwnam(prefix + home.name)
            except KeyError:
                continue  # a hub that is not root runs every server as itself
            accounts.append(
                {
                    "user": home.name,
                    "account": prefix + home.name,
                    "admin": prefix + home.name in admins,
                }
            )
    return accounts


def lower_priority(nice: int) -> None:
    """The backup yields the CPU and the disk to the hub and the students' servers."""
    try:
        os.nice(max(0, nice - os.nice(0)))
    except OSError:
        pass
    try:
        import psutil

        psutil.Process().ionice(psutil.IOPRIO_CLASS_BE, 7)
    except Exception:  # noqa: BLE001 - not every kernel or filesystem has I/O priorities
        pass


def default_backup_path(site: Site, cfg: MLWorkshopConfig) -> Path:
    folder = cfg.backup.dir or site.root / "backups"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    path = folder / f"mlworkshop-{socket.gethostname()}-{stamp}.tar.gz"
    n = 1
    while path.exists():  # two runs in one second
        path = folder / f"mlworkshop-{socket.gethostname()}-{stamp}-{n}.tar.gz"
        n += 1
    return path


def create_backup(
    site: Site,
    cfg: MLWorkshopConfig,
    target: Path,
    homes: bool = True,
    level: int | None = None,
    progress_total: Callable[[int], None] | None = None,
    progress: Progress | None = None,
) -> BackupResult:
    """Write the backup archive to `target` (which must not exist). See the module docstring."""
    level = cfg.backup.compression_level if level is None else level
    target = target.absolute()
    if target.exists() or target.is_symlink():
        raise BackupError(
            f"{target} exists already: choose another file name (backups are never overwritten)."
        )
    if not site.config_file.exists():
        raise BackupError(f"No site at {site.root} (no {site.config_file.name}).")
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"Cannot make the folder {target.parent}: {exc.strerror}.") from None
    for inside in (site.users, site.submissions, site.content(cfg)):
        if target.parent == inside or inside in target.parent.parents:
            raise BackupError(
                f"{target} is inside {inside}, which the backup reads: write it elsewhere."
            )

    started = time.perf_counter()
    result = BackupResult(target)
    result.timings.update(
        {k: 0.0 for k in ("databases", "walk", "read files", "sha256", "compress", "write archive")}
    )
    hub_url = site.db_url(cfg)
    usage_url = site.usage_db_url(cfg)
    content = site.content(cfg)
    if progress_total:
        total = sum(
            tree_size(p)
            for p in ([content, site.submissions, site.secrets] + ([site.users] if homes else []))
            if p.is_dir()
        )
        progress_total(total)

    tmp = Path(tempfile.mkdtemp(prefix=".mlw-backup-", dir=target.parent))
    partial = tmp / "archive.partial"
    try:
        # the databases first: their snapshots are the moment the backup stands for
        t = time.perf_counter()
        snapshots: dict[str, tuple[str, Path, Path | None]] = {}
        if hub_url.startswith("sqlite"):
            source = sqlite_path(hub_url)
            if source.exists():  # a site whose hub never ran and has no accounts has none yet
                copy_sqlite(source, tmp / "hub.sqlite")
                snapshots["hub"] = (fmt.HUB_SQLITE, tmp / "hub.sqlite", source)
        else:
            pg_dump(hub_url, tmp / "hub.pgdump")
            snapshots["hub"] = (fmt.HUB_PGDUMP, tmp / "hub.pgdump", None)
        usage_same = usage_url == hub_url
        if usage_url.startswith("sqlite"):
            source = sqlite_path(usage_url)
            if source.exists():
                copy_sqlite(source, tmp / "usage.sqlite")
                snapshots["usage"] = (fmt.USAGE_SQLITE, tmp / "usage.sqlite", source)
        elif not usage_same:
            pg_dump(usage_url, tmp / "usage.pgdump")
            snapshots["usage"] = (fmt.USAGE_PGDUMP, tmp / "usage.pgdump", None)
        result.timings["databases"] = time.perf_counter() - t

        meta = {
            "format": fmt.FORMAT,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": socket.gethostname(),
            "site": str(site.root),
            "homes": homes,
            "user_prefix": cfg.spawner.local.user_prefix,
            "admin_group": cfg.spawner.local.admin_group,
            "accounts": site_accounts(site, cfg),
            "databases": {
                "hub": (
                    {
                        "kind": "sqlite" if hub_url.startswith("sqlite") else "postgresql",
                        "member": snapshots["hub"][0],
                    }
                    if "hub" in snapshots
                    else {"kind": "none"}
                ),
                "usage": (
                    {"kind": "same-as-hub"}
                    if usage_same and not usage_url.startswith("sqlite")
                    else {
                        "kind": "sqlite" if usage_url.startswith("sqlite") else "postgresql",
                        "member": snapshots["usage"][0],
                    }
                    if "usage" in snapshots
                    else {"kind": "none"}
                ),
            },
            "content_dir": str(cfg.workspace.content_dir) if cfg.workspace.content_dir else None,
        }
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            raw = _TimedFile(fd, result.timings)
            gz = _TimedGzip(raw, level)
            with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                tar.copybufsize = CHUNK
                writer = _Writer(tar, gz, level, result, progress)
                writer.add_bytes(fmt.META, json.dumps(meta, indent=1).encode())
                writer.add_path_file("mlworkshop.yaml", site.config_file, owner_of=site.config_file)
                writer.add_tree("secrets", site.secrets)
                for member, snapshot, source in snapshots.values():
                    folder = member.split("/")[0]
                    if folder not in writer.manifest:
                        real = source.parent if source is not None else site.state
                        writer.add_dir_entry(
                            folder, os.stat(real) if folder != "db" else os.stat(site.state)
                        )
                    writer.add_path_file(member, snapshot, owner_of=source)
                if (
                    site.state / UID_HIGH_WATER
                ).is_file():  # uids this site handed out: never again
                    if "state" not in writer.manifest:
                        writer.add_dir_entry("state", os.stat(site.state))
                    writer.add_path_file(f"state/{UID_HIGH_WATER}", site.state / UID_HIGH_WATER)
                writer.add_tree("content", content)
                writer.add_tree("submissions", site.submissions)
                if homes:
                    writer.add_tree("users", site.users)
                writer.add_bytes(
                    fmt.MANIFEST,
                    json.dumps(
                        {"format": fmt.FORMAT, "entries": writer.manifest}, indent=0
                    ).encode(),
                )
            gz.close()
            t = time.perf_counter()
            os.fsync(fd)
            result.timings["write archive"] += time.perf_counter() - t
            result.bytes_out = raw.written
        finally:
            os.close(fd)
        os.rename(partial, target)  # complete, or not there at all
        _fsync_dir(target.parent)
    except OSError as exc:
        raise BackupError(
            f"The backup failed: {exc.strerror or exc}"
            f"{': ' + str(exc.filename) if exc.filename else ''}. Nothing was written to {target}."
        ) from None
    finally:
        for leftover in tmp.iterdir():
            leftover.unlink()
        tmp.rmdir()
    result.seconds = time.perf_counter() - started
    return result


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prune(folder: Path, keep: int) -> list[Path]:
    """Scheduled backups: delete all but the newest `keep` mlworkshop-*.tar.gz in `folder`."""
    backups = sorted(
        (p for p in folder.glob("mlworkshop-*.tar.gz") if p.is_file() and not p.is_symlink()),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    removed = []
    for old in backups[keep:]:
        old.unlink()
        removed.append(old)
    return removed
