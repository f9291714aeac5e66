"""Backup and restore of a site on disk (no hub): what goes in, what comes back, and what an
archive that is damaged, cut short or forged gets (refused, nothing written).

Real files, real system accounts (root: useradd/userdel with a throwaway prefix), real SQLite;
archives are damaged by flipping a byte or cutting them, and forged with tarfile.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pwd
import secrets
import sqlite3
import stat
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from mlworkshop.config import load_config, set_key
from mlworkshop.ops import archive as fmt
from mlworkshop.ops.archive import ArchiveError
from mlworkshop.ops.backup import BackupError, create_backup, prune
from mlworkshop.ops.dbdump import copy_sqlite
from mlworkshop.ops.restore import RestoreError, restore_site, verify_archive
from mlworkshop.ops.schedule import timer_units
from mlworkshop.site import Site, init_site

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (system accounts, chown)")
MLW = [sys.executable, "-m", "mlworkshop.cli.main"]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(root: Path, under: str) -> dict[str, tuple]:
    """Every entry under root/under: kind, mode, owner name, and content hash or link target."""
    found = {}
    base = root / under
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            owner = pwd.getpwuid(st.st_uid).pw_name
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(path), owner)
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", stat.S_IMODE(st.st_mode), owner)
            elif stat.S_ISREG(st.st_mode):
                found[rel] = ("file", stat.S_IMODE(st.st_mode), owner, sha(path))
    return found


@pytest.fixture
def accounts():
    made: list[str] = []

    def make(name: str) -> pwd.struct_passwd:
        subprocess.run(
            ["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", "-U", name],
            check=True,
            capture_output=True,
        )
        made.append(name)
        return pwd.getpwnam(name)

    yield make
    for name in made:
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", name], capture_output=True)


@pytest.fixture
def site(tmp_path):
    s = Site(tmp_path / "site")
    init_site(s)
    prefix = "tb" + secrets.token_hex(2) + "-"
    set_key(s.root, "spawner.local.user_prefix", prefix)
    set_key(s.root, "spawner.local.admin_group", prefix + "adm")
    yield s
    for entry in pwd.getpwall():
        if entry.pw_name.startswith(prefix):
            subprocess.run(["userdel", entry.pw_name], capture_output=True)
    subprocess.run(["groupdel", prefix + "adm"], capture_output=True)


def fill(site: Site, outside: Path) -> None:
    """Two students' homes with what students make: text, binaries, non-ASCII names, links out of
    the site and into a classmate's folder, a hard link, an empty file, a FIFO."""
    secret = outside / "secret.txt"
    secret.write_text("TOP-SECRET-OUTSIDE-THE-SITE\n")
    os.chmod(secret, 0o600)
    for name in ("alice", "bob"):
        work = site.users / name / "work"
        work.mkdir(parents=True)
        (site.submissions / name).mkdir(parents=True)
        (work / "notes.py").write_text(f"print('{name}')\n" * 1000)
        (work / "权重.bin").write_bytes(os.urandom(3 << 20))
        (work / "empty").write_bytes(b"")
        (site.submissions / name / "hw1.ipynb").write_text('{"cells": []}')
    alice = site.users / "alice" / "work"
    (alice / "shadow").symlink_to("/etc/shadow")
    (alice / "secret").symlink_to(secret)
    (alice / "bobs-work").symlink_to(site.users / "bob" / "work")
    os.link(alice / "notes.py", alice / "notes-hardlink.py")
    os.mkfifo(alice / "pipe")
    (site.content(load_config(site.root)) / "datasets" / "iris.csv").write_text("1,2,3\n" * 100)


def test_round_trip_keeps_every_file_link_and_mode(site, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    fill(site, outside)
    os.chmod(site.submissions / "alice", 0o2750)
    before = {k: snapshot(site.root, k) for k in ("users", "submissions", "content", "secrets")}
    archive = tmp_path / "b.tar.gz"
    result = create_backup(site, load_config(site.root), archive)
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert any("pipe" in s for s in result.skipped)  # a FIFO is never opened (it would block)
    target = Site(tmp_path / "restored")
    restore_site(archive, target)
    for key, entries in before.items():
        assert snapshot(target.root, key) == entries, key
    # links came back as links, never followed; the hard link is one file again
    work = target.users / "alice" / "work"
    assert os.readlink(work / "shadow") == "/etc/shadow"
    assert os.stat(work / "notes.py").st_ino == os.stat(work / "notes-hardlink.py").st_ino
    assert stat.S_IMODE(os.stat(target.submissions / "alice").st_mode) == 0o2750
    assert load_config(target.root) == load_config(site.root)


def test_links_a_student_planted_are_never_read(site, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    fill(site, outside)
    archive = tmp_path / "b.tar.gz"
    create_backup(site, load_config(site.root), archive)
    stream = gzip.decompress(archive.read_bytes())
    assert b"TOP-SECRET-OUTSIDE-THE-SITE" not in stream
    shadow = Path("/etc/shadow").read_bytes()
    assert shadow.split(b"\n")[0] not in stream


def test_sqlite_snapshot_while_written(tmp_path):
    db_path = tmp_path / "live.sqlite"
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (i INTEGER PRIMARY KEY, pad TEXT)")
    db.commit()
    stop = threading.Event()

    def writer():
        conn = sqlite3.connect(db_path, timeout=30)
        i = 0
        while not stop.is_set():
            conn.execute("INSERT INTO t (pad) VALUES (?)", ("x" * 500,))
            conn.commit()
            i += 1
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        copies = []
        for n in range(5):
            copy = tmp_path / f"copy{n}.sqlite"
            copy_sqlite(db_path, copy)
            copies.append(copy)
    finally:
        stop.set()
        thread.join()
    for copy in copies:
        conn = sqlite3.connect(copy)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert not Path(str(copy) + "-wal").exists()
        conn.close()


@root_only
def test_ownership_follows_names_not_uids(site, tmp_path, accounts):
    cfg = load_config(site.root)
    prefix = cfg.spawner.local.user_prefix
    alice = accounts(prefix + "alice")
    home = site.users / "alice"
    (home / "work").mkdir(parents=True)
    (home / "work" / "mine.txt").write_text("alice's")
    for path in (home, home / "work", home / "work" / "mine.txt"):
        os.chown(path, alice.pw_uid, alice.pw_gid)
    stranger = accounts("tbx" + secrets.token_hex(2))
    os.chown(home / "work" / "mine.txt", alice.pw_uid, alice.pw_gid)
    (home / "work" / "theirs.txt").write_text("?")
    os.chown(home / "work" / "theirs.txt", stranger.pw_uid, stranger.pw_gid)
    archive = tmp_path / "b.tar.gz"
    create_backup(site, cfg, archive)

    # a "new machine": alice's account is gone and her old uid belongs to someone else
    subprocess.run(["userdel", alice.pw_name], check=True)
    subprocess.run(["userdel", stranger.pw_name], check=True)
    subprocess.run(["groupdel", stranger.pw_name], capture_output=True)
    squatter = accounts("tbs" + secrets.token_hex(2))
    if squatter.pw_uid != alice.pw_uid:  # make sure the old number is taken by another name
        subprocess.run(["usermod", "-o", "-u", str(alice.pw_uid), squatter.pw_name], check=True)

    target = Site(tmp_path / "restored")
    result = restore_site(archive, target)
    again = pwd.getpwnam(prefix + "alice")
    assert again.pw_uid != alice.pw_uid
    mine = target.users / "alice" / "work" / "mine.txt"
    assert mine.stat().st_uid == again.pw_uid
    assert (target.users / "alice").stat().st_uid == again.pw_uid
    # an owner this machine does not know: root's, and said so
    assert (target.users / "alice" / "work" / "theirs.txt").stat().st_uid == 0
    assert any(stranger.pw_name in note for note in result.notes)


def _damaged(archive: Path, how: str, where: float = 0.5) -> Path:
    data = bytearray(archive.read_bytes())
    out = archive.with_name(f"{how}-{where}.tar.gz")
    if how == "flip":
        data[int(len(data) * where)] ^= 0x01
    else:
        del data[int(len(data) * where) :]
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize(
    "how,where", [("flip", 0.3), ("flip", 0.7), ("flip", 0.999), ("cut", 0.5), ("cut", 0.999)]
)
def test_damaged_archive_is_refused_and_nothing_written(site, tmp_path, how, where):
    fill(site, tmp_path)
    archive = tmp_path / "b.tar.gz"
    create_backup(site, load_config(site.root), archive)
    bad = _damaged(archive, how, where)
    with pytest.raises(ArchiveError):
        verify_archive(bad)
    target = tmp_path / "restored"
    with pytest.raises(ArchiveError):
        restore_site(bad, Site(target))
    assert not target.exists()
    empty = tmp_path / "empty-site"
    empty.mkdir(mode=0o755)
    with pytest.raises(ArchiveError):
        restore_site(bad, Site(empty))
    assert list(empty.iterdir()) == [] and stat.S_IMODE(empty.stat().st_mode) == 0o755


def test_damaged_archive_from_the_cli_is_a_message(site, tmp_path):
    fill(site, tmp_path)
    archive = tmp_path / "b.tar.gz"
    create_backup(site, load_config(site.root), archive)
    bad = _damaged(archive, "flip", 0.5)
    for args in (
        ["backup", "--verify", str(bad)],
        ["restore", str(bad), "--site", str(tmp_path / "r")],
    ):
        run = subprocess.run([*MLW, *args], capture_output=True, text=True)
        assert run.returncode == 2, run
        assert "not a good backup" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "r").exists()
    good = subprocess.run(
        [*MLW, "backup", "--verify", str(archive)], capture_output=True, text=True
    )
    assert good.returncode == 0 and "every checksum matches" in good.stdout


def test_non_empty_site_needs_force_and_keeps_what_was_there(site, tmp_path):
    archive = tmp_path / "b.tar.gz"
    create_backup(site, load_config(site.root), archive)
    target = tmp_path / "busy"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    with pytest.raises(RestoreError, match="not empty"):
        restore_site(archive, Site(target))
    assert sorted(p.name for p in target.iterdir()) == ["precious.txt"]
    result = restore_site(archive, Site(target), force=True)
    kept = list(target.glob(".pre-restore-*/precious.txt"))
    assert kept and kept[0].read_text() == "keep me"
    assert (target / "mlworkshop.yaml").exists() and any("pre-restore" in n for n in result.notes)


def test_backup_never_overwrites_and_leaves_no_partial_file(site, tmp_path):
    archive = tmp_path / "b.tar.gz"
    archive.write_text("an older backup")
    with pytest.raises(BackupError, match="exists already"):
        create_backup(site, load_config(site.root), archive)
    assert archive.read_text() == "an older backup"
    inside = site.users / "alice"
    inside.mkdir(parents=True)
    with pytest.raises(BackupError, match="inside"):
        create_backup(site, load_config(site.root), inside / "b.tar.gz")
    assert list(tmp_path.glob(".mlw-backup-*")) == []


# --- forged archives: whatever a member's name or link says, nothing lands outside the site ----------
def forge(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """An archive with a valid meta member and manifest around `members`."""
    manifest = {}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        meta = json.dumps({"format": fmt.FORMAT, "accounts": [], "databases": {}}).encode()
        info = tarfile.TarInfo(fmt.META)
        info.size = len(meta)
        tar.addfile(info, io.BytesIO(meta))
        for info, data in members:
            if info.isreg():
                info.size = len(data)
                manifest[info.name] = {
                    "type": "file",
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
                tar.addfile(info, io.BytesIO(data))
            else:
                kind = "dir" if info.isdir() else "symlink" if info.issym() else "hardlink"
                manifest[info.name] = {"type": kind} | (
                    {"target": info.linkname} if kind != "dir" else {}
                )
                tar.addfile(info)
        raw = json.dumps({"format": fmt.FORMAT, "entries": manifest}).encode()
        info = tarfile.TarInfo(fmt.MANIFEST)
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    path.write_bytes(gzip.compress(buf.getvalue()))
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


@pytest.mark.parametrize(
    "members",
    [
        [(member("../escaped.txt"), b"x")],
        [(member("/tmp/escaped.txt"), b"x")],
        [(member("users", tarfile.DIRTYPE), None), (member("users/../../escaped.txt"), b"x")],
        [(member("etc", tarfile.DIRTYPE), None), (member("etc/escaped.txt"), b"x")],
        # a link out of the site, then a file written "through" it
        [
            (member("users", tarfile.DIRTYPE), None),
            (member("users/out", tarfile.SYMTYPE, "{outside}"), None),
            (member("users/out/escaped.txt"), b"x"),
        ],
        # a hard link to a file outside
        [
            (member("users", tarfile.DIRTYPE), None),
            (member("users/h", tarfile.LNKTYPE, "{outside}/victim.txt"), None),
        ],
        [
            (member("users", tarfile.DIRTYPE), None),
            (member("users/h", tarfile.LNKTYPE, "../../victim.txt"), None),
        ],
        # a device node
        [(member("users", tarfile.DIRTYPE), None), (member("users/dev", tarfile.CHRTYPE), None)],
    ],
    ids=[
        "dotdot",
        "absolute",
        "dotdot-inside",
        "not-a-site-folder",
        "through-symlink",
        "hardlink-abs",
        "hardlink-dotdot",
        "device",
    ],
)
def test_forged_archive_writes_nothing_outside(tmp_path, members):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("victim")
    for info, _ in members:
        info.name = info.name.replace("{outside}", str(outside))
        info.linkname = info.linkname.replace("{outside}", str(outside))
    archive = forge(tmp_path / "forged.tar.gz", members)
    target = tmp_path / "site"
    with pytest.raises(ArchiveError):
        restore_site(archive, Site(target))
    assert not target.exists()
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    assert (outside / "victim.txt").read_text() == "victim"
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/escaped.txt").exists()


def test_forged_setuid_file_loses_the_bit(tmp_path):
    info = member("users/x")
    info.mode = 0o4755
    members = [(member("users", tarfile.DIRTYPE), None), (info, b"#!/bin/sh\n")]
    for info_, _ in members:
        info_.uname = info_.gname = "root"
    archive = forge(tmp_path / "setuid.tar.gz", members)
    restore_site(archive, Site(tmp_path / "site"))
    assert stat.S_IMODE((tmp_path / "site" / "users" / "x").stat().st_mode) == 0o755


def test_prune_keeps_the_newest(tmp_path):
    for n in range(5):
        path = tmp_path / f"mlworkshop-host-2026010{n}-000000.tar.gz"
        path.write_text(str(n))
        os.utime(path, (1000 + n, 1000 + n))
    (tmp_path / "other.txt").write_text("not a backup")
    removed = prune(tmp_path, 2)
    assert len(removed) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "mlworkshop-host-20260103-000000.tar.gz",
        "mlworkshop-host-20260104-000000.tar.gz",
        "other.txt",
    ]


def test_timer_units(site):
    set_key(site.root, "backup.schedule", "'*-*-* 02:30'")
    units = timer_units(site, load_config(site.root), python="/opt/mlw/bin/python")
    service = next(text for name, text in units.items() if name.endswith(".service"))
    timer = next(text for name, text in units.items() if name.endswith(".timer"))
    assert (
        f"ExecStart=/opt/mlw/bin/python -m mlworkshop.cli.main backup --scheduled --site {site.root}"
        in service
    )
    assert "OnCalendar=*-*-* 02:30" in timer and "Persistent=true" in timer


def test_scheduled_runs_keep_the_newest_and_no_homes_leaves_homes_out(site, tmp_path):
    (site.users / "alice" / "work").mkdir(parents=True)
    (site.users / "alice" / "work" / "a.txt").write_text("a")
    (site.submissions / "alice").mkdir(parents=True)
    (site.submissions / "alice" / "hw.txt").write_text("hw")
    folder = tmp_path / "backups"
    set_key(site.root, "backup.dir", str(folder))
    set_key(site.root, "backup.keep", "2")
    set_key(site.root, "backup.homes", "false")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLWORKSHOP_")}
    for _ in range(3):
        run = subprocess.run(
            [*MLW, "backup", "--scheduled", "--site", str(site.root)],
            capture_output=True,
            text=True,
            env=env,
        )
        assert run.returncode == 0, run.stderr
    kept = sorted(folder.glob("mlworkshop-*.tar.gz"))
    assert len(kept) == 2 and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in kept)
    with tarfile.open(kept[-1]) as tar:
        names = tar.getnames()
    assert "submissions/alice/hw.txt" in names and not any(n.startswith("users") for n in names)


@root_only
def test_restore_refuses_a_folder_someone_else_owns(site, tmp_path, accounts):
    archive = tmp_path / "b.tar.gz"
    create_backup(site, load_config(site.root), archive)
    student = accounts("tbo" + secrets.token_hex(2))
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, student.pw_uid, student.pw_gid)
    with pytest.raises(RestoreError, match="belongs to uid"):
        restore_site(archive, Site(theirs))
    assert list(theirs.iterdir()) == []
