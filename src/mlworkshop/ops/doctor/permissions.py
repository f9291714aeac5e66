"""Permissions of the shared content (lessons, datasets, models) and of submissions.

Content must not be writable by students: one who can write a lesson can change what the whole
class runs. Submissions must not be readable by other students. The fix puts back the modes
`mlworkshop up` sets (hub/workspace.py prepare_shared_content / prepare_workspace): folders
2775 and files group-writable for the admin group, nothing writable by others; each student's
submissions folder 2750.

The fix runs as root (`doctor --fix`, the watch service) in folders a student may have been able
to write, so it never follows a path a student can replace: the walk (safewalk.py, the one `up`
uses) holds each folder open, each entry is opened relative to that folder without following a
link (O_PATH | O_NOFOLLOW), checked through the open descriptor, and changed through that very
descriptor (/proc/self/fd/N). Links are left alone; so is a file with more than one name (a
hard link a student planted to a file elsewhere).
"""

from __future__ import annotations

import grp
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from ... import safewalk
from ...site import CONTENT_KINDS
from .findings import Context, Finding, ok

SHOWN = 5


def _admin_gid(ctx: Context) -> int | None:
    if os.geteuid() != 0 or ctx.cfg is None:
        return None
    try:
        return grp.getgrnam(ctx.cfg.spawner.local.admin_group).gr_gid
    except KeyError:
        return None


def _content_entries(ctx: Context) -> Iterator[tuple[str, int]]:
    """The content folder itself, and everything in lessons/, datasets/ and models/."""
    content = ctx.site.content(ctx.cfg)
    yield from safewalk.entries(content, recursive=False)
    for kind in CONTENT_KINDS:
        yield from safewalk.entries(content / kind)


def _content_mode(st: os.stat_result, admin_gid: int | None) -> int | None:
    """The mode `up` gives this content entry, or None to leave it alone."""
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        return 0o2775 if admin_gid is not None else mode & ~0o002
    if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
        return ((mode | 0o060) & ~0o002) if admin_gid is not None else mode & ~0o002
    return None


def _world_writable(ctx: Context) -> list[str]:
    bad = []
    for path, fd in _content_entries(ctx):
        st = os.fstat(fd)
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o002:
            bad.append(path)
    return bad


def _repair_content(ctx: Context) -> str:
    gid = _admin_gid(ctx)
    changed, left = [], []
    for path, fd in _content_entries(ctx):
        st = os.fstat(fd)
        if stat.S_ISLNK(st.st_mode) or not st.st_mode & 0o002:
            continue
        mode = _content_mode(st, gid)
        if mode is None:
            left.append(path)
            continue
        safewalk.change(fd, st, gid, mode)
        changed.append(f"{path} {stat.S_IMODE(st.st_mode):o} -> {mode:o}")
    n = len(changed)
    done = f"chmod back {n} content entr{'y' if n == 1 else 'ies'}: " + "; ".join(changed[:SHOWN])
    if left:
        done += f" (left alone, not a plain folder or file: {', '.join(left[:SHOWN])})"
    return done


def check_content(ctx: Context) -> list[Finding]:
    if ctx.cfg is None:
        return []
    bad = _world_writable(ctx)
    content = ctx.site.content(ctx.cfg)
    if not bad:
        return [ok("content-permissions", f"content in {content} is not writable by students")]
    shown = ", ".join(bad[:SHOWN]) + (f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else "")
    return [
        Finding(
            "content-permissions",
            "error",
            f"{len(bad)} content entr{'y is' if len(bad) == 1 else 'ies are'} writable by every account "
            f"({shown}): any student can change what the whole class runs.",
            "mlworkshop doctor --fix (puts back the modes `mlworkshop up` sets: folders 2775, nothing writable by others)",
            lambda: _repair_content(ctx),
        )
    ]


def _submission_problems(ctx: Context) -> list[tuple[str, int, int]]:
    """(path, mode now, mode it should have) of submissions folders that are wrong."""
    root = ctx.site.submissions
    fd = safewalk.open_nofollow(str(root))
    if fd is None:
        return []
    found = []
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode) and st.st_mode & 0o002:
            found.append(
                (str(root), stat.S_IMODE(st.st_mode), 0o2755 if os.geteuid() == 0 else 0o755)
            )
        if os.geteuid() != 0 or not stat.S_ISDIR(st.st_mode):
            return (
                found  # a hub not run as root runs every server as itself: no per-student folders
            )
        for name in os.listdir(f"/proc/self/fd/{fd}"):
            child = safewalk.open_nofollow(name, fd)
            if child is None:
                continue
            try:
                cst = os.fstat(child)
                if stat.S_ISDIR(cst.st_mode) and cst.st_mode & 0o007:
                    found.append((str(root / name), stat.S_IMODE(cst.st_mode), 0o2750))
            finally:
                os.close(child)
    finally:
        os.close(fd)
    return found


def _repair_submissions(ctx: Context) -> str:
    root = ctx.site.submissions
    fd = safewalk.open_nofollow(str(root))
    if fd is None:
        return "nothing to do"
    changed = []
    try:
        wanted = {path: mode for path, _now, mode in _submission_problems(ctx)}
        for path, mode in wanted.items():
            target = fd if path == str(root) else safewalk.open_nofollow(Path(path).name, fd)
            if target is None:
                continue
            try:
                st = os.fstat(target)
                if stat.S_ISDIR(st.st_mode):  # checked through the descriptor, changed through it
                    os.chmod(f"/proc/self/fd/{target}", mode)
                    changed.append(f"{path} -> {mode:o}")
            finally:
                if target != fd:
                    os.close(target)
    finally:
        os.close(fd)
    return "chmod back submissions: " + "; ".join(changed[:SHOWN])


def check_submissions(ctx: Context) -> list[Finding]:
    if ctx.cfg is None:
        return []
    bad = _submission_problems(ctx)
    if not bad:
        return [
            ok("submissions-permissions", "submissions are private to each student and the admins")
        ]
    shown = ", ".join(f"{path} ({now:o})" for path, now, _ in bad[:SHOWN])
    return [
        Finding(
            "submissions-permissions",
            "error",
            f"{len(bad)} submissions folder(s) open to other accounts ({shown}): students can read "
            "(or change) each other's work.",
            "mlworkshop doctor --fix (submissions/ 2755, each student's folder 2750)",
            lambda: _repair_submissions(ctx),
        )
    ]
