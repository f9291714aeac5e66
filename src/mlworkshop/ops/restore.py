"""`mlworkshop restore` and `mlworkshop backup --verify`: a backup back into a site, checked first.

Order, so that a damaged archive leaves nothing behind and a good one leaves a working site:
1. The whole archive is read into a staging folder inside the site (<site>/.restore-*, 0700,
   root's), every file hashed as it is written; then the member list and every hash are compared
   with the manifest, and the gzip stream is read to its end (its CRCs). A flipped byte or a cut
   archive stops here: the staging folder is removed (and the site folder, if restore made it),
   and no account, database or file outside it was touched.
2. The databases are checked (SQLite's quick_check) or restored (pg_restore into an empty
   database, one transaction); running servers are forgotten (ops/dbdump.forget_servers).
3. Accounts are made by name where missing (students' <prefix><name>, the admin group, the hub's
   service accounts); every entry gets its owner by name (uids differ between machines), with
   lchown: never through a link. A name this machine does not know gives the entry to root.
4. The staged entries are renamed into the site; the config is pointed at the new databases.

Hand-written rather than tarfile.extractall(filter="data"): that filter is not in this Python
(3.11.2; it came in 3.11.4), and where it is, it refuses links to absolute paths, which students
legitimately have (and planted ones must come back as links, never be followed), and it drops the
setgid and group-write bits the shared folders need. Here a member may not leave the site by its
name, links are made only after every file and folder (so no write can pass through one), files
are created with O_EXCL|O_NOFOLLOW, and set-user/group-ID bits of files are dropped.
"""

from __future__ import annotations

import grp
import gzip
import hashlib
import json
import os
import pwd
import secrets
import shutil
import stat
import tarfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..site import Site
from . import archive as fmt
from .archive import ArchiveError
from .dbdump import DatabaseCopyError, check_sqlite, forget_servers, pg_restore, redact, tables

CHUNK = 1 << 20
MAX_JSON = 256 << 20


class RestoreError(RuntimeError):
    """str() says what failed and what a lab admin can do about it."""


@dataclass
class Entry:
    name: str
    type: str  # file, dir, symlink, hardlink
    uname: str
    gname: str
    mode: int
    mtime: int
    target: str = ""
    size: int = 0
    sha256: str = ""


@dataclass
class ArchiveContents:
    meta: dict
    entries: list[Entry]
    files: int = 0
    bytes: int = 0
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class RestoreResult:
    site: Path
    contents: ArchiveContents
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


class _CountingReader:
    """The archive file; reports compressed bytes read (the progress bar's measure)."""

    def __init__(self, handle, progress: Callable[[int], None] | None, timings: dict[str, float]):
        self.handle = handle
        self.progress = progress
        self.timings = timings

    def read(self, n: int = -1) -> bytes:
        t = time.perf_counter()
        data = self.handle.read(n)
        self.timings["read archive"] += time.perf_counter() - t
        if self.progress and data:
            self.progress(len(data))
        return data


def _json(tar: tarfile.TarFile, member: tarfile.TarInfo) -> dict:
    if member.size > MAX_JSON:
        raise ArchiveError(f"{member.name} is implausibly large ({member.size} bytes)")
    try:
        value = json.loads(tar.extractfile(member).read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{member.name} cannot be read: {exc}") from None
    if not isinstance(value, dict):
        raise ArchiveError(f"{member.name} is not what a backup writes")
    return value


def _check_parent(name: str, seen: dict[str, Entry]) -> None:
    parent = name.rpartition("/")[0]
    if parent and (parent not in seen or seen[parent].type != "dir"):
        raise ArchiveError(f"{name!r} comes without its folder {parent!r}")


def read_archive(
    path: Path, staging: Path | None = None, progress: Callable[[int], None] | None = None
) -> ArchiveContents:
    """Read and check the whole archive; with `staging`, write its files and folders there (not
    its links: see write_links). Raises ArchiveError for anything but a complete, intact backup."""
    timings = {k: 0.0 for k in ("read archive", "decompress", "sha256", "write files")}
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise ArchiveError(f"cannot open {path}: {exc.strerror}") from None
    try:
        return _read(handle, staging, progress, timings)
    except ArchiveError:
        raise
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ArchiveError(
            f"the archive is damaged or cut short ({exc or type(exc).__name__})"
        ) from None
    except OSError as exc:
        if staging is not None and exc.filename:
            raise
        raise ArchiveError(f"the archive is damaged or cut short ({exc})") from None
    finally:
        handle.close()


def _read(handle, staging: Path | None, progress, timings) -> ArchiveContents:
    gz = gzip.GzipFile(fileobj=_CountingReader(handle, progress, timings), mode="rb")
    tar = tarfile.open(fileobj=gz, mode="r|", bufsize=CHUNK)
    meta: dict | None = None
    manifest: dict | None = None
    seen: dict[str, Entry] = {}
    order: list[Entry] = []
    files = total = 0
    for member in tar:
        name = fmt.check_member_name(member.name)
        if manifest is not None:
            raise ArchiveError(f"{name!r} comes after the manifest")
        if meta is None:
            if name != fmt.META:
                raise ArchiveError(
                    f"this is not an mlworkshop backup (it starts with {name!r}, not {fmt.META})"
                )
            meta = _json(tar, member)
            if meta.get("format") != fmt.FORMAT:
                raise ArchiveError(
                    f"backup format {meta.get('format')!r} is not one this version reads ({fmt.FORMAT})"
                )
            continue
        if name == fmt.MANIFEST:
            manifest = _json(tar, member)
            continue
        if name in seen or name == fmt.META:
            raise ArchiveError(f"{name!r} appears twice")
        _check_parent(name, seen)
        entry = Entry(
            name,
            "",
            member.uname or "",
            member.gname or "",
            member.mode & 0o7777,
            int(member.mtime),
        )
        if member.isdir():
            entry.type = "dir"
            if staging is not None:
                os.mkdir(staging / name, 0o700)
        elif member.isreg():
            entry.type, entry.size = "file", member.size
            entry.sha256 = _copy(
                tar, member, staging / name if staging is not None else None, timings
            )
            files += 1
            total += member.size
        elif member.issym():
            entry.type, entry.target = "symlink", member.linkname
        elif member.islnk():
            target = fmt.check_member_name(member.linkname)
            if target not in seen or seen[target].type != "file":
                raise ArchiveError(
                    f"{name!r} is a hard link to {target!r}, which is not a file before it"
                )
            entry.type, entry.target = "hardlink", target
        else:
            raise ArchiveError(f"{name!r} is of a kind a backup never holds (type {member.type!r})")
        seen[name] = entry
        order.append(entry)
    # the rest of the gzip stream: its last CRC and length checks run only at its very end
    t = time.perf_counter()
    while gz.read(CHUNK):
        pass
    timings["decompress"] += time.perf_counter() - t
    if meta is None:
        raise ArchiveError("the archive is empty or not a backup")
    if manifest is None:
        raise ArchiveError("the archive is cut short: its manifest (the last member) is missing")
    _compare(seen, manifest)
    timings["decompress"] = max(0.0, timings["decompress"])
    return ArchiveContents(meta, order, files, total, timings)


def _copy(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path | None, timings) -> str:
    sha = hashlib.sha256()
    source = tar.extractfile(member)
    fd = None
    if target is not None:
        fd = os.open(
            target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    try:
        left = member.size
        while left:
            t = time.perf_counter()
            data = source.read(min(CHUNK, left))
            t2 = time.perf_counter()
            timings["decompress"] += t2 - t
            if not data:
                raise ArchiveError(f"the archive is cut short inside {member.name!r}")
            sha.update(data)
            t3 = time.perf_counter()
            timings["sha256"] += t3 - t2
            if fd is not None:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                timings["write files"] += time.perf_counter() - t3
            left -= len(data)
    finally:
        if fd is not None:
            os.close(fd)
    return sha.hexdigest()


def _compare(seen: dict[str, Entry], manifest: dict) -> None:
    listed = manifest.get("entries")
    if not isinstance(listed, dict):
        raise ArchiveError("the manifest lists no entries")
    missing = sorted(set(listed) - set(seen))
    extra = sorted(set(seen) - set(listed))
    if missing or extra:
        raise ArchiveError(
            f"the archive does not match its manifest: {len(missing)} entries missing "
            f"(e.g. {missing[:3]}), {len(extra)} not listed (e.g. {extra[:3]})"
        )
    for name, entry in seen.items():
        want = listed[name]
        if not isinstance(want, dict) or want.get("type") != entry.type:
            raise ArchiveError(f"{name!r} is not the kind of entry the manifest says")
        if entry.type == "file" and (
            want.get("sha256") != entry.sha256 or want.get("size") != entry.size
        ):
            raise ArchiveError(
                f"{name!r} does not match its checksum in the manifest: the archive is damaged"
            )
        if entry.type in ("symlink", "hardlink") and want.get("target") != entry.target:
            raise ArchiveError(
                f"{name!r} does not point where the manifest says: the archive is damaged"
            )


def verify_archive(path: Path, progress: Callable[[int], None] | None = None) -> ArchiveContents:
    """Everything restore checks, without writing anything."""
    return read_archive(path, None, progress)


# --- restore ------------------------------------------------------------------------------
def _empty(folder: Path) -> bool:
    return not folder.exists() or (folder.is_dir() and not any(folder.iterdir()))


def write_links(staging: Path, entries: list[Entry]) -> None:
    """Hard links, then symbolic links, once every file and folder is in place: nothing is ever
    written through a link, and a link's target is never opened."""
    for entry in entries:
        if entry.type == "hardlink":
            os.link(staging / entry.target, staging / entry.name, follow_symlinks=False)
    for entry in entries:
        if entry.type == "symlink":
            os.symlink(entry.target, staging / entry.name)


class _Owners:
    """Names to this machine's uids and gids; accounts of the site made where missing."""

    def __init__(self, meta: dict, site: Site, state_dir: Path, notes: list[str]):
        self.meta = meta
        self.state_dir = state_dir
        self.site = site
        self.notes = notes
        self.unknown: dict[str, int] = {}

    def prepare(self, entries: list[Entry]) -> None:
        from ..hub.service_accounts import ensure_service_account
        from ..hub.workspace import ensure_account, ensure_group, set_group_membership

        admin_group = self.meta.get("admin_group") or ""
        accounts = self.meta.get("accounts") or []
        if admin_group and (accounts or any(e.gname == admin_group for e in entries)):
            ensure_group(admin_group)
        made = []
        for account in accounts:
            name = account["account"]
            try:
                pwd.getpwnam(name)
            except KeyError:
                # the uid high-water mark of the site being restored (its state/ is in staging)
                ensure_account(name, self.site.users / account["user"], self.state_dir)
                made.append(name)
            if admin_group:
                set_group_membership(name, admin_group, bool(account.get("admin")))
        for uname in sorted({e.uname for e in entries}):
            if uname.startswith("_mlw-"):
                ensure_service_account(uname)
        if made:
            self.notes.append(
                f"made {len(made)} system account(s): {', '.join(made[:10])}"
                + (" ..." if len(made) > 10 else "")
            )

    def uid(self, name: str) -> int:
        try:
            return pwd.getpwnam(name).pw_uid if name else 0
        except KeyError:
            self.unknown[name] = self.unknown.get(name, 0) + 1
            return 0

    def gid(self, name: str) -> int:
        try:
            return grp.getgrnam(name).gr_gid if name else 0
        except KeyError:
            self.unknown[name] = self.unknown.get(name, 0) + 1
            return 0


def apply_owners(staging: Path, entries: list[Entry], owners: _Owners | None) -> None:
    """Owner by name (lchown), mode and time of every entry; children before their folders."""
    uids: dict[str, int] = {}
    gids: dict[str, int] = {}
    for entry in reversed(entries):
        path = staging / entry.name
        if owners is not None:
            uid = uids.setdefault(entry.uname, owners.uid(entry.uname))
            gid = gids.setdefault(entry.gname, owners.gid(entry.gname))
            os.chown(path, uid, gid, follow_symlinks=False)
        if entry.type == "symlink":
            os.utime(path, (entry.mtime, entry.mtime), follow_symlinks=False)
            continue
        mode = entry.mode
        if entry.type != "dir":
            mode &= ~(stat.S_ISUID | stat.S_ISGID)
        os.chmod(path, mode)  # after chown, which clears set-ID bits; never a link here
        os.utime(path, (entry.mtime, entry.mtime), follow_symlinks=False)


def restore_site(
    archive: Path,
    site: Site,
    force: bool = False,
    db_url: str | None = None,
    usage_db_url: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> RestoreResult:
    """Restore `archive` into `site` (see the module docstring for the order of things)."""
    from ..config import load_config, set_key, to_yaml

    started = time.perf_counter()
    root = site.root
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        raise RestoreError(f"{root} is not a folder.")
    if not _empty(root) and not force:
        raise RestoreError(
            f"{root} is not empty: restore into a new or empty folder, or add --force "
            "(what is there is moved into a folder .pre-restore-* inside it, never deleted)."
        )
    if not archive.is_file():
        raise RestoreError(f"No backup at {archive}.")
    if root.exists() and root.stat().st_uid != os.geteuid():
        # someone else could put links into it while we restore (the new site is root's alone)
        raise RestoreError(
            f"{root} belongs to uid {root.stat().st_uid}, not to you: restore into a new "
            "folder (restore makes it) or one of your own."
        )
    created = not root.exists()
    old_mode = None if created else stat.S_IMODE(root.stat().st_mode)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(root, 0o700)  # until it is complete; 0755 at the end, as `init` makes it
    staging = root / f".restore-{secrets.token_hex(4)}"
    staging.mkdir(mode=0o700)
    notes: list[str] = []
    try:
        t = time.perf_counter()
        contents = read_archive(archive, staging, progress)
        timings = dict(contents.timings)
        timings["read and check"] = time.perf_counter() - t
        meta = contents.meta
        old_cfg = load_config(staging, environ={})

        # 2. databases: targets first (all checks before any write)
        t = time.perf_counter()
        dbs = meta.get("databases", {})
        hub_kind = dbs.get("hub", {}).get("kind")
        usage_kind = dbs.get("usage", {}).get("kind")
        changes: dict[str, object] = {}
        pg_jobs: list[tuple[Path, str]] = []
        if hub_kind == "postgresql":
            target = db_url or old_cfg.hub.db_url
            if not target:
                raise RestoreError(
                    "The backup's hub database is PostgreSQL: give an empty database with --db-url."
                )
            pg_jobs.append((staging / fmt.HUB_PGDUMP, target))
            if target != old_cfg.hub.db_url:
                changes["hub.db_url"] = target
            if (
                usage_kind == "same-as-hub"
                and old_cfg.usage.db_url
                and target != old_cfg.usage.db_url
            ):
                changes["usage.db_url"] = target
        elif hub_kind == "sqlite":
            check_sqlite(staging / fmt.HUB_SQLITE)
            forget_servers(f"sqlite:///{staging / fmt.HUB_SQLITE}")
            if old_cfg.hub.db_url:
                changes["hub.db_url"] = None
        if usage_kind == "postgresql":
            target = usage_db_url or old_cfg.usage.db_url
            if not target:
                raise RestoreError(
                    "The backup's usage database is PostgreSQL: give an empty database with --usage-db-url."
                )
            pg_jobs.append((staging / fmt.USAGE_PGDUMP, target))
            if target != old_cfg.usage.db_url:
                changes["usage.db_url"] = target
        elif usage_kind == "sqlite":
            check_sqlite(staging / fmt.USAGE_SQLITE)
            if old_cfg.usage.db_url:
                changes["usage.db_url"] = None
        for _dump, target in pg_jobs:
            found = tables(target)
            if found:
                raise RestoreError(
                    f"The database {redact(target)} is not empty ({len(found)} tables, e.g. "
                    f"{', '.join(sorted(found)[:3])}): restore goes into an empty database only. "
                    "Create a new one and pass it with --db-url / --usage-db-url."
                )
        if old_cfg.workspace.content_dir:
            changes["workspace.content_dir"] = None
            notes.append(
                f"content (was {old_cfg.workspace.content_dir}) is now in {site.root / 'content'}"
            )

        # 3. links, accounts, owners
        write_links(staging, contents.entries)
        owners = None
        if os.geteuid() == 0:
            owners = _Owners(meta, site, staging / "state", notes)
            owners.prepare(contents.entries)
        else:
            notes.append(
                "not root: every file now belongs to you (accounts are made only by a root restore)"
            )
        t2 = time.perf_counter()
        apply_owners(staging, contents.entries, owners)
        timings["ownership"] = time.perf_counter() - t2
        if owners is not None and owners.unknown:
            notes.append(
                "no account here for "
                + ", ".join(f"{n} ({c} entries)" for n, c in owners.unknown.items())
                + ": those entries now belong to root"
            )

        # PostgreSQL last of all fallible steps: one transaction each into an empty database
        for dump, target in pg_jobs:
            pg_restore(dump, target)
            forget_servers(target)
        if pg_jobs:
            for dump, _ in pg_jobs:
                dump.unlink()
            (staging / "db").rmdir()
        timings["databases"] = time.perf_counter() - t - timings["ownership"]

        # 4. into place
        if not created:
            aside = [p for p in root.iterdir() if p != staging]
            if aside:
                keep = root / f".pre-restore-{time.strftime('%Y%m%d-%H%M%S')}"
                keep.mkdir(mode=0o700)
                for path in aside:
                    os.rename(path, keep / path.name)
                notes.append(f"what was in {root} before is in {keep}")
        for path in sorted(staging.iterdir()):
            os.rename(path, root / path.name)
        staging.rmdir()
        os.chmod(root, 0o755)
        os.sync()  # on disk before we say it is restored
        for key, value in changes.items():
            set_key(root, key, to_yaml(value))
        if changes:
            notes.append(
                "config: "
                + ", ".join(
                    f"{k} = {redact(v) if isinstance(v, str) else v}" for k, v in changes.items()
                )
            )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(root, ignore_errors=True)
        elif old_mode is not None:
            os.chmod(root, old_mode)
        raise
    result = RestoreResult(root, contents, time.perf_counter() - started, notes, timings)
    return result


__all__ = [
    "ArchiveError",
    "DatabaseCopyError",
    "RestoreError",
    "restore_site",
    "verify_archive",
    "read_archive",
]
