"""fastpath.privileges.drop_privileges(), the one way a process becomes a student's: each step
checked in a real child process made root -> nobody, and the order where it shows -- the log is
opened and the cgroup joined while still root, the ids dropped for good, the folder entered as
the student. Needs root (skipped otherwise); the cgroup test needs cgroup v1 controllers, as
tests/unit/test_cgroups.py does."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import subprocess
import sys

import pytest

from mlworkshop import cgroups
from mlworkshop.fastpath.privileges import Identity, drop_privileges

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")

# A child that drops its privileges as drop_privileges(**args) and reports what it became on
# fd `report` (a pipe: its stdout is the user's log by then).
CHILD = r"""
import json, os, sys
from mlworkshop.fastpath.privileges import Identity, drop_privileges
args, report = json.loads(sys.argv[1]), int(sys.argv[2])
seen = {}
def after_join():
    seen.update(after_join_uid=os.getuid(), after_join_stdout=os.readlink("/proc/self/fd/1"),
                after_join_cgroup=open("/proc/self/cgroup").read())
ident = args.pop("identity")
try:
    drop_privileges(Identity(*ident), after_join=after_join, **args)
except OSError as exc:
    seen["error"] = type(exc).__name__
print("written by the student", flush=True)
seen.update(uid=os.getuid(), euid=os.geteuid(), gid=os.getgid(), groups=sorted(os.getgroups()),
            umask=os.umask(0), session_leader=os.getsid(0) == os.getpid(),
            nice=os.getpriority(os.PRIO_PROCESS, 0), cwd=os.getcwd(),
            stdout=os.readlink("/proc/self/fd/1"), cgroup=open("/proc/self/cgroup").read())
try:
    os.setuid(0)
    seen["regained_root"] = True
except PermissionError:
    seen["regained_root"] = False
os.write(report, json.dumps(seen).encode())
"""

NOBODY = pwd.getpwnam("nobody")
IDENT = [NOBODY.pw_uid, NOBODY.pw_gid, [NOBODY.pw_gid]]


def run_child(**args) -> dict:
    r, w = os.pipe()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(args), str(w)],
            pass_fds=[w],
            capture_output=True,
            text=True,
            timeout=60,
        )
        os.close(w)
        w = -1
        assert proc.returncode == 0, proc.stderr
        with os.fdopen(r, "rb") as f:
            r = -1
            return json.loads(f.read())
    finally:
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)


@pytest.fixture
def user_log(tmp_path):
    """A user's log as the hub prepares it: in a folder that is root's, 0750."""
    folder = tmp_path / "logs" / "users"
    folder.mkdir(parents=True)
    folder.chmod(0o750)
    return folder / "ann.log"


def test_becomes_the_student_for_good(user_log):
    own_nice = os.getpriority(os.PRIO_PROCESS, 0)
    seen = run_child(identity=IDENT, output=str(user_log), nice=3, umask=0o027, cwd="/")
    assert "error" not in seen, seen
    assert (seen["uid"], seen["euid"], seen["gid"], seen["groups"]) == (
        NOBODY.pw_uid,
        NOBODY.pw_uid,
        NOBODY.pw_gid,
        [NOBODY.pw_gid],
    )
    assert seen["regained_root"] is False  # setuid last: irreversible
    assert seen["umask"] == 0o027 and seen["cwd"] == "/" and seen["nice"] == min(own_nice + 3, 19)
    assert seen["session_leader"]  # its own session: signals to its group reach it and its children
    # the log was opened by root (nobody cannot even reach the folder) before the ids changed
    assert seen["stdout"] == str(user_log)
    assert user_log.read_text() == "written by the student\n"


def test_the_folder_is_entered_as_the_student(tmp_path):
    private = tmp_path / "root-only"
    private.mkdir(mode=0o700)
    seen = run_child(identity=IDENT, output=None, cwd=str(private))
    assert (
        seen["error"] == "PermissionError"
    )  # root could have entered it: chdir comes after setuid
    assert seen["uid"] == NOBODY.pw_uid and seen["stdout"] == "/dev/null"


def test_the_cgroup_is_joined_as_root_before_anything_else(user_log):
    h = cgroups.detect()
    if h is None or h.version != 1 or not {"memory", "pids"} <= set(h.roots):
        pytest.skip("needs cgroup v1 memory and pids controllers")
    account = "mlwtest-" + secrets.token_hex(3)
    dirs = cgroups.ensure(h, account, cgroups.Limits(pids=100))
    try:
        seen = run_child(
            identity=IDENT, cgroup_dirs=[str(d) for d in dirs], output=str(user_log), cwd="/"
        )
    finally:
        cgroups.remove(h, account)
    assert f"/{cgroups.PARENT}/{account}" in seen["cgroup"]
    # after_join ran in the group, still root, its output still the parent's (where a refusal is logged)
    assert f"/{cgroups.PARENT}/{account}" in seen["after_join_cgroup"]
    assert seen["after_join_uid"] == 0 and seen["after_join_stdout"] != str(user_log)


def test_a_cold_server_preexec_keeps_popens_session_and_output():
    """The spawner's cold path: Popen made the session (start_new_session) and set fds 1 and 2;
    drop_privileges() neither fails on the session nor touches the output."""
    code = (
        "import os; print(os.getuid(), os.getsid(0) == os.getpid(), oct(os.umask(0)), os.getcwd())"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        start_new_session=True,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: drop_privileges(Identity(*IDENT), umask=0o022, cwd="/"),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(NOBODY.pw_uid), "True", "0o22", "/"]


def test_identity_none_keeps_the_ids(tmp_path):
    """A hub that is not root (identity None): umask and folder still set, no id changed."""
    code = (
        "import os; from mlworkshop.fastpath.privileges import drop_privileges; "
        f"drop_privileges(None, umask=0o077, cwd={str(tmp_path)!r}); "
        "print(os.getuid(), oct(os.umask(0)), os.getcwd())"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "0o77", str(tmp_path)]
