"""A student plants entries in their own home, then restarts their server: the workspace is
prepared again by root (issue 11, item 1). Root must not change the owner or mode of anything
a planted entry points at, whether a symbolic or a hard link.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import tempfile
from pathlib import Path

from tests.integration.hubctl import mlw

PASSWORD = "Mallory-Pass-42"


def as_account(account: str, script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["runuser", "-u", account, "--", "sh", "-c", script],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=60,
    )


def student_with_a_server(hub, name: str):
    mlw(hub.site, "user", "add", name, "--password-stdin", input=PASSWORD + "\n")
    if hub.proc is None:
        hub.start()
    browser = hub.browser()
    assert browser.login(name, PASSWORD).status_code == 302
    browser.start_server(name)
    return browser


def test_a_hard_link_planted_where_a_content_link_was_keeps_its_owner_and_mode(make_hub):
    hub = make_hub()
    mallory = student_with_a_server(hub, "mallory")
    account = hub.prefix + "mallory"
    home = hub.site / "users" / "mallory"
    # a file she does not own; with fs.protected_hardlinks=1 she may link it because she can
    # write it (with protected_hardlinks=0 any file on the filesystem would do)
    folder = Path(tempfile.mkdtemp(prefix="mlw-victim-", dir=hub.site))
    os.chmod(folder, 0o755)
    victim = folder / "shared.cfg"
    victim.write_text("root's\n")
    os.chmod(victim, 0o666)
    for entry in ("lessons", "submissions"):
        planted = as_account(account, f"rm {home / entry} && ln {victim} {home / entry}")
        assert planted.returncode == 0, planted.stderr
    assert victim.stat().st_nlink == 3

    mallory.stop_server("mallory")
    mallory.start_server("mallory")  # root prepares her workspace again

    st = victim.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o666), (
        f"root changed the linked file: owner {pwd.getpwuid(st.st_uid).pw_name}, mode {oct(st.st_mode)}"
    )


def test_a_file_planted_in_place_of_work_is_moved_aside_and_left_untouched(make_hub):
    hub = make_hub()
    mallory = student_with_a_server(hub, "mallory")
    account = hub.prefix + "mallory"
    home = hub.site / "users" / "mallory"
    folder = Path(tempfile.mkdtemp(prefix="mlw-victim-", dir=hub.site))
    os.chmod(folder, 0o755)
    victim = folder / "notes.txt"
    victim.write_text("root's\n")
    os.chmod(victim, 0o646)
    planted = as_account(account, f"rmdir {home / 'work'} && ln {victim} {home / 'work'}")
    assert planted.returncode == 0, planted.stderr

    mallory.stop_server("mallory")
    mallory.start_server("mallory")  # her server starts again, with a fresh work/ of her own

    st = victim.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o646)
    work = (home / "work").lstat()
    assert stat.S_ISDIR(work.st_mode) and work.st_uid == pwd.getpwnam(account).pw_uid
    assert stat.S_IMODE(work.st_mode) == 0o700
