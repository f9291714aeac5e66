"""Content and submissions permissions (ops/doctor/permissions.py), on real folders: a lesson
folder chmod 0777 is an error, --fix puts back what `up` sets, and the fix (run as root) never
follows a link a student could have planted in a folder they could write."""

from __future__ import annotations

import grp
import os
import secrets
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlworkshop.config import load_config
from mlworkshop.config.loader import set_key
from mlworkshop.ops.doctor import permissions
from mlworkshop.ops.doctor.findings import Context
from mlworkshop.site import Site, init_site

from .doctor_helpers import doctor, finding


@pytest.fixture
def site(tmp_path) -> Iterator[Path]:
    """A site whose admin group exists, as `up` leaves it under a root hub: a group of its own,
    so the result does not depend on whether this machine has the default one (a fresh machine
    has no `mlw-admins`, and the fix then only takes away the others' write bit)."""
    root = tmp_path / "site"
    init_site(Site(root))
    group = None
    if os.geteuid() == 0:
        group = "mlwt" + secrets.token_hex(3)
        subprocess.run(["groupadd", group], check=True, capture_output=True)
        set_key(root, "spawner.local.admin_group", group)
    yield root
    if group:
        subprocess.run(["groupdel", group], capture_output=True)


def _ctx(root: Path) -> Context:
    return Context(Site(root), load_config(root, {}))


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_lesson_folder_0777_is_an_error_and_fix_chmods_it_back(site):
    lesson = site / "content" / "lessons" / "01-ml-fundamentals"
    lesson.mkdir(parents=True, exist_ok=True)
    os.chmod(lesson, 0o777)
    code, report = doctor(site)
    found = finding(report, "content-permissions")
    assert code == 1 and report["status"] == "error"
    assert found["severity"] == "error" and found["fixable"], found
    assert str(lesson) in found["message"] and "doctor --fix" in found["fix"]

    code, report = doctor(site, "--fix")
    assert [r["id"] for r in report["repairs"]] == ["content-permissions"]
    assert finding(report, "content-permissions")["severity"] == "ok"
    assert not _mode(lesson) & 0o002
    if os.geteuid() == 0:  # what `up` sets under a root hub (hub/workspace.py)
        assert _mode(lesson) == 0o2775
        admins = load_config(site, {}).spawner.local.admin_group
        assert os.lstat(lesson).st_gid == grp.getgrnam(admins).gr_gid


def test_the_fix_never_follows_a_link_planted_in_a_writable_folder(site, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "secret.txt"
    target.write_text("root's")
    os.chmod(target, 0o666)
    os.chmod(outside, 0o777)
    lessons = site / "content" / "lessons"
    os.chmod(lessons, 0o777)
    (lessons / "link-to-file").symlink_to(target)
    (lessons / "link-to-folder").symlink_to(outside)
    (lessons / "hard").mkdir()
    os.link(target, lessons / "hard" / "second-name")  # the same inode: left alone

    ctx = _ctx(site)
    bad = permissions._world_writable(ctx)
    assert str(lessons) in bad and str(lessons / "hard" / "second-name") in bad
    assert not any("link-to" in path for path in bad)
    done = permissions._repair_content(ctx)
    assert "second-name" in done  # said it left it
    assert _mode(target) == 0o666 and _mode(outside) == 0o777  # nothing outside changed
    assert not _mode(lessons) & 0o002


def test_open_submissions_are_an_error_and_fixed(site):
    os.chmod(site / "submissions", 0o777)
    ctx = _ctx(site)
    [found] = permissions.check_submissions(ctx)
    assert found.severity == "error" and found.fixable
    found.repair()
    assert not _mode(site / "submissions") & 0o022
    assert permissions.check_submissions(ctx)[0].severity == "ok"
