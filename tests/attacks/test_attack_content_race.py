"""A lesson folder a student can write to (an admin's mistake: world-writable and hers, copied in
from her hand-in with `cp -a`; `mlworkshop doctor` reports it): while root prepares the shared content (`mlworkshop up`, hub/workspace.py prepare_shared_content), a
student swaps a subfolder for a symbolic link to a root-owned folder outside the site, over and
over. Root must never change the owner or mode of anything the link points at: the walk and
every change go through descriptors opened without following links, never by a path string.

The race is made likely, not certain: many files in the swapped folder (so root spends its time
changing entries below it) and the student's swap is one atomic renameat2(RENAME_EXCHANGE) in a
tight loop. Before the fix, root changed the decoy in the first round (three runs of three).

A folder that is only world-writable (root's, 0777) is closed by the walk itself before its
entries are listed, so the student must keep write access during the walk: hers, she keeps it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import textwrap
from pathlib import Path

from mlworkshop.hub.workspace import ensure_account, ensure_group, prepare_shared_content

ROUNDS = 30
FILES = 1500

# Run by the student: swap `sub` (root's real folder) and `swap` (her link to the decoy) until
# the file `stop` appears. One syscall per swap, so `sub` is a link about half of the time.
SWAPPER = textwrap.dedent(
    """
    import ctypes, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    RENAME_EXCHANGE, AT_FDCWD = 2, -100
    folder = sys.argv[1].encode()
    os.symlink(sys.argv[2], os.path.join(sys.argv[1], "swap"))
    print("ready", flush=True)
    a, b = os.path.join(folder, b"sub"), os.path.join(folder, b"swap")
    stop = os.path.join(sys.argv[1], "stop")
    n = 0
    while not os.path.exists(stop):
        for _ in range(200):
            libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
        n += 200
    print(n, flush=True)
    """
)


def _tree(top: Path) -> dict[str, tuple[int, int, int]]:
    """(uid, gid, mode) of top and everything below it, by path relative to top."""
    found = {".": _owner_mode(top)}
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            path = Path(root) / name
            found[str(path.relative_to(top))] = _owner_mode(path)
    return found


def _owner_mode(path: Path) -> tuple[int, int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def _fill(folder: Path, mode: int) -> None:
    """`inner/` and FILES files, the same names in the real folder and in the decoy."""
    (folder / "inner").mkdir(mode=0o755)
    os.chmod(folder / "inner", 0o755)
    for i in range(FILES):
        path = folder / f"f{i:05}.txt"
        path.write_text("x")
        os.chmod(path, mode)


def test_a_student_swapping_a_content_folder_for_a_link_never_gets_root_to_change_what_it_points_at(
    make_hub,
):
    hub = make_hub()
    account = hub.prefix + "mallory"
    ensure_group(hub.admin_group)
    student = ensure_account(account, hub.site / "users" / "mallory", hub.site / "state")
    content, submissions = hub.site / "content", hub.site / "submissions"
    prepare_shared_content(content, submissions, hub.admin_group)  # as `up` does, before class

    # the admin's mistake: a lesson folder the student can write to, and keeps writing to after
    # `up` (hers: copied in from her hand-in with `cp -a`; `up` keeps an entry's owner)
    lesson = content / "lessons" / "open"
    lesson.mkdir()
    os.chmod(lesson, 0o777)
    os.chown(lesson, student.uid, student.gid)
    (lesson / "sub").mkdir(mode=0o755)
    _fill(lesson / "sub", 0o644)
    real = os.open(lesson / "sub", os.O_RDONLY | os.O_DIRECTORY)  # wherever she moves it

    # root's own folder outside the site, with the same names inside; the student can reach it
    decoy = Path(tempfile.mkdtemp(prefix="mlw-decoy-", dir="/tmp"))
    try:
        os.chmod(decoy, 0o755)
        _fill(decoy, 0o644)
        before = _tree(decoy)
        assert before["."] == (0, 0, 0o755) and before["inner"] == (0, 0, 0o755)

        swapper = subprocess.Popen(
            ["runuser", "-u", account, "--", "python3", "-c", SWAPPER, str(lesson), str(decoy)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd="/",
        )
        try:
            assert swapper.stdout.readline().strip() == "ready", swapper.stderr.read()
            won = None
            for round_ in range(1, ROUNDS + 1):
                # the real folder's entries back to 0644 (through its fd: root's folder, she
                # cannot change what is in it), so each round root has work to do below it
                for name in os.listdir(real):
                    os.chmod(name, 0o755 if name == "inner" else 0o644, dir_fd=real)
                prepare_shared_content(content, submissions, hub.admin_group)
                if _tree(decoy) != before:
                    won = round_
                    break
        finally:
            (lesson / "stop").touch()
            out, err = swapper.communicate(timeout=60)
            os.close(real)
        swaps = out.split()[-1] if out.split() else "?"
        assert swapper.returncode == 0, err
        after = _tree(decoy)
        changed = {k: (before[k], after.get(k)) for k in before if after.get(k) != before[k]}
        assert won is None and not changed, (
            f"root changed {len(changed)} entries of {decoy} through the student's link "
            f"(round {won} of {ROUNDS}, {swaps} swaps by uid {student.uid}): "
            f"{dict(list(changed.items())[:5])}"
        )
    finally:
        shutil.rmtree(decoy, ignore_errors=True)
