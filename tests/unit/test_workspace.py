"""Workspaces on disk with real system accounts (hub/workspace.py). Needs root: the hub runs as
root to isolate users, and only root can make accounts and change owners.

Each test uses a throwaway account prefix (tu<hex>-) and admin group, removed afterwards, and a
site under /tmp that other accounts can traverse (pytest's tmp_path is 0700 under root).
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from mlworkshop.hub.workspace import WorkspaceError, prepare_shared_content, prepare_workspace
from mlworkshop.names import BadUsername, normalize_username

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="workspaces need root (system accounts, chown)"
)


class Lab:
    def __init__(self, root: Path, prefix: str, admin_group: str):
        self.root, self.prefix, self.admin_group = root, prefix, admin_group
        self.users, self.submissions, self.content = (
            root / "users",
            root / "submissions",
            root / "content",
        )

    def account(self, name: str) -> str:
        return self.prefix + name

    def prepare(self, name: str, admin: bool = False):
        return prepare_workspace(
            self.users,
            self.submissions,
            self.content,
            name,
            admin,
            self.account(name),
            self.admin_group,
        )

    def as_user(self, name: str, *command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["runuser", "-u", self.account(name), "--", *command],
            capture_output=True,
            text=True,
            cwd="/",
            timeout=30,
        )


@pytest.fixture
def lab():
    tag = "tu" + secrets.token_hex(2)
    root = Path(tempfile.mkdtemp(prefix="mlw-ws-", dir="/tmp"))
    os.chmod(root, 0o755)
    for folder in ("users", "submissions"):
        (root / folder).mkdir(mode=0o755)
    lab = Lab(root, f"{tag}-", f"{tag}-adm")
    prepare_shared_content(lab.content, lab.submissions, lab.admin_group)
    try:
        yield lab
    finally:
        for entry in pwd.getpwall():
            if entry.pw_name.startswith(lab.prefix):
                subprocess.run(["userdel", entry.pw_name], capture_output=True)
        for entry in grp.getgrall():
            if entry.gr_name.startswith(lab.prefix):
                subprocess.run(["groupdel", entry.gr_name], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_student_workspace_layout_owners_and_modes(lab):
    ws = lab.prepare("ann")
    account = pwd.getpwnam(lab.account("ann"))
    admin_gid = grp.getgrnam(lab.admin_group).gr_gid
    home = lab.users / "ann"
    assert (
        ws.home == home
        and ws.account.name == lab.account("ann")
        and ws.account.uid == account.pw_uid
    )
    assert Path(account.pw_dir) == home
    for folder in (home, home / "work"):
        assert folder.stat().st_uid == account.pw_uid
        assert mode(folder) == 0o700, f"{folder}: {oct(mode(folder))}"
    own = lab.submissions / "ann"
    assert (own.stat().st_uid, own.stat().st_gid, mode(own)) == (account.pw_uid, admin_gid, 0o2750)
    for kind in ("lessons", "datasets", "models"):
        assert (home / kind).is_symlink() and Path(os.readlink(home / kind)) == lab.content / kind
    assert Path(os.readlink(home / "submissions")) == own
    assert lab.account("ann") not in grp.getgrnam(lab.admin_group).gr_mem


def test_admin_gets_all_submissions_and_the_admin_group(lab):
    lab.prepare("ada", admin=True)
    assert Path(os.readlink(lab.users / "ada" / "submissions")) == lab.submissions
    assert lab.account("ada") in grp.getgrnam(lab.admin_group).gr_mem


def test_student_cannot_write_shared_content(lab):
    lab.prepare("ann")
    for kind in ("lessons", "datasets", "models"):
        for target in (lab.users / "ann" / kind / "mine.txt", lab.content / kind / "mine.txt"):
            result = lab.as_user("ann", "touch", str(target))
            assert result.returncode != 0 and "Permission denied" in result.stderr, (target, result)
            assert not target.exists()
    (lab.content / "lessons" / "intro.txt").write_text("read me")
    assert (
        lab.as_user("ann", "cat", str(lab.users / "ann" / "lessons" / "intro.txt")).stdout
        == "read me"
    )


def test_students_cannot_see_each_others_work_or_submissions(lab):
    lab.prepare("ann")
    lab.prepare("ben")
    ben = lab.users / "ben"
    assert (
        lab.as_user("ben", "sh", "-c", f"echo secret > {ben / 'work' / 'notes.txt'}").returncode
        == 0
    )
    assert lab.as_user("ben", "touch", str(lab.submissions / "ben" / "hw1.ipynb")).returncode == 0
    for attempt in (
        ["ls", str(ben / "work")],
        ["cat", str(ben / "work" / "notes.txt")],
        ["ls", str(ben)],
        ["ls", str(lab.submissions / "ben")],
        ["touch", str(lab.submissions / "ben" / "x")],
        ["touch", str(lab.submissions / "ann-fake")],
    ):
        result = lab.as_user("ann", *attempt)
        assert result.returncode != 0 and "Permission denied" in result.stderr, (attempt, result)
    # ...while ann can write her own work and hand-in folder
    assert lab.as_user("ann", "touch", str(lab.users / "ann" / "work" / "a.py")).returncode == 0
    assert (
        lab.as_user("ann", "touch", str(lab.users / "ann" / "submissions" / "hw1.ipynb")).returncode
        == 0
    )


def test_admin_reads_submissions_and_edits_content(lab):
    lab.prepare("ann")
    lab.prepare("ada", admin=True)
    assert (
        lab.as_user(
            "ann", "sh", "-c", f"echo answer > {lab.submissions / 'ann' / 'hw1.txt'}"
        ).returncode
        == 0
    )
    seen = lab.as_user("ada", "cat", str(lab.users / "ada" / "submissions" / "ann" / "hw1.txt"))
    assert seen.returncode == 0 and seen.stdout == "answer\n", seen
    made = lab.as_user("ada", "touch", str(lab.users / "ada" / "lessons" / "new-lesson.ipynb"))
    assert made.returncode == 0, made
    denied = lab.as_user(
        "ada", "ls", str(lab.users / "ann" / "work")
    )  # admins read hand-ins, not work/
    assert denied.returncode != 0


def test_demotion_takes_back_group_and_link_and_is_idempotent(lab):
    lab.prepare("ada", admin=True)
    lab.prepare("ada", admin=False)
    lab.prepare("ada", admin=False)
    assert Path(os.readlink(lab.users / "ada" / "submissions")) == lab.submissions / "ada"
    assert lab.account("ada") not in grp.getgrnam(lab.admin_group).gr_mem
    assert lab.as_user("ada", "touch", str(lab.content / "lessons" / "x")).returncode != 0


def test_a_folder_the_user_made_in_place_of_a_link_is_kept(lab):
    lab.prepare("ann")
    home = lab.users / "ann"
    (home / "datasets").unlink()
    (home / "datasets").mkdir()
    (home / "datasets" / "mine.csv").write_text("1,2\n")
    lab.prepare("ann")
    assert (home / "datasets" / "mine.csv").read_text() == "1,2\n"


def test_a_link_planted_in_place_of_work_does_not_make_root_change_its_target(lab):
    """A student can replace ~/work by a link to any folder; the next server start (as root)
    must not chmod or chown what the link points to."""
    lab.prepare("ann")
    victim = Path(tempfile.mkdtemp(prefix="mlw-victim-", dir="/tmp"))
    try:
        os.chmod(victim, 0o755)
        work = lab.users / "ann" / "work"
        assert (
            lab.as_user("ann", "sh", "-c", f"rmdir {work} && ln -s {victim} {work}").returncode == 0
        )
        try:
            lab.prepare("ann")
        except WorkspaceError as exc:
            assert str(work) in str(exc)  # refusing is fine, if it says which path
        st = victim.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o755)
    finally:
        shutil.rmtree(victim, ignore_errors=True)


@pytest.mark.parametrize("raw", ["../x", "a/b", "..", "x/../../etc"])
def test_path_like_names_are_refused_before_any_folder_is_made(raw):
    with pytest.raises(BadUsername):
        normalize_username(raw)


def test_a_link_planted_in_shared_content_does_not_make_root_hand_its_target_to_admins(lab):
    """Admin-group members may rename things in content/; `mlworkshop up` (root) then prepares
    the shared folders and must not chown/chmod the target of a link planted there."""
    victim = Path(tempfile.mkdtemp(prefix="mlw-victim-", dir="/tmp"))
    try:
        os.chmod(victim, 0o755)
        (lab.content / "datasets").rmdir()
        (lab.content / "datasets").symlink_to(victim, target_is_directory=True)
        prepare_shared_content(lab.content, lab.submissions, lab.admin_group)
        st = victim.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o755)
        assert (lab.content / "datasets").is_symlink()  # an admin's link to a big disk stays
        assert mode(lab.content / "lessons") == 0o2775
        assert (lab.content / "lessons").stat().st_gid == grp.getgrnam(lab.admin_group).gr_gid
    finally:
        shutil.rmtree(victim, ignore_errors=True)


def test_a_hard_link_planted_in_place_of_a_content_link_keeps_its_files_owner_and_mode(lab):
    """Issue 11: root used to chown whatever stood at ~/lessons, and a hard link is the file."""
    lab.prepare("ann")
    victim = lab.root / "victim.cfg"
    victim.write_text("root's\n")
    os.chmod(victim, 0o666)  # protected_hardlinks lets her link a file she can write
    home = lab.users / "ann"
    for entry in ("lessons", "submissions"):
        assert (
            lab.as_user(
                "ann", "sh", "-c", f"rm {home / entry} && ln {victim} {home / entry}"
            ).returncode
            == 0
        )
    lab.prepare("ann")
    st = victim.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o666)


def test_a_file_planted_in_place_of_work_is_moved_aside_untouched(lab):
    lab.prepare("ann")
    victim = lab.root / "victim.txt"
    victim.write_text("root's\n")
    os.chmod(victim, 0o646)
    work = lab.users / "ann" / "work"
    assert lab.as_user("ann", "sh", "-c", f"rmdir {work} && ln {victim} {work}").returncode == 0
    lab.prepare("ann")
    st = victim.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o646)
    assert (
        work.is_dir()
        and not work.is_symlink()
        and work.stat().st_uid == pwd.getpwnam(lab.account("ann")).pw_uid
    )
    assert [p.name.startswith("work.moved-") for p in work.parent.iterdir()].count(True) == 1


def test_a_new_account_of_a_removed_name_gets_a_new_uid_and_fresh_folders(lab):
    lab.prepare("ann")
    old = pwd.getpwnam(lab.account("ann"))
    assert (
        lab.as_user(
            "ann", "sh", "-c", f"echo old > {lab.users / 'ann' / 'work' / 'old.txt'}"
        ).returncode
        == 0
    )
    subprocess.run(
        ["userdel", lab.account("ann")], check=True
    )  # what `user remove` leaves: files, no account

    ws = lab.prepare("ann")
    assert ws.account.uid > old.pw_uid and ws.account.gid > old.pw_gid
    assert not (lab.users / "ann" / "work" / "old.txt").exists()
    assert lab.users.joinpath("ann").stat().st_uid == ws.account.uid
    kept = lab.root / "removed" / f"ann-uid{old.pw_uid}"
    assert (kept / "users" / "work" / "old.txt").read_text() == "old\n"
    assert (kept / "submissions").is_dir() and mode(lab.root / "removed") == 0o700
    assert int((lab.root / "state" / "uid-high-water").read_text()) >= ws.account.uid


def test_a_hard_link_planted_in_shared_content_is_not_handed_to_admins(lab):
    victim = lab.root / "victim.conf"
    victim.write_text("x")
    os.chmod(victim, 0o644)
    os.link(victim, lab.content / "datasets" / "planted.conf")
    prepare_shared_content(lab.content, lab.submissions, lab.admin_group)
    st = victim.stat()
    assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0o644)
    (lab.content / "lessons" / "plain.txt").write_text("y")
    prepare_shared_content(lab.content, lab.submissions, lab.admin_group)
    plain = (lab.content / "lessons" / "plain.txt").stat()
    assert plain.st_gid == grp.getgrnam(lab.admin_group).gr_gid and plain.st_mode & 0o060 == 0o060
