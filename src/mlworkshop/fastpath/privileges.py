"""drop_privileges(): the one way a process of the hub's becomes a student's.

Three processes are made into a student's: a server forked by the fork server (server.py), a
kernel forked for a server (kernels.py), and a server started cold by the hub (the spawner's
preexec function). All three call drop_privileges(), so all three drop in the same order; each
passes only the steps it has (a cold server already has its session and its output from Popen;
only a kernel copies resource limits and stays dumpable).

Stdlib and mlworkshop.cgroups / mlworkshop.userlogs only, and nothing imported when it runs: it
is called in a preexec function of a hub with threads, where an import could deadlock.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .. import cgroups
from ..userlogs import redirect_output

PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
KEEP = "keep"  # output=KEEP: fds 1 and 2 are already the user's (Popen set them)


@dataclass(frozen=True)
class Identity:
    """Who a process becomes: uid, primary gid and supplementary groups."""

    uid: int
    gid: int
    groups: Sequence[int] = field(default_factory=tuple)


def drop_privileges(
    identity: Identity | None,
    *,
    cgroup_dirs: Sequence[str | os.PathLike] = (),
    after_join: Callable[[], None] | None = None,
    output: str | os.PathLike | None = KEEP,
    nice: int = 0,
    rlimits: dict[int, tuple[int, int]] | None = None,
    dumpable: bool = False,
    umask: int | None = None,
    cwd: str | os.PathLike | None = None,
) -> None:
    """Become `identity` (None: stay who we are, the hub is not root), in this order:

    1. setsid: a session and process group of its own, first, so that the signals sent to the
       group (the hub stopping a server, a kernel interrupt) reach it and whatever it starts,
       and nothing of the hub's terminal is its controlling terminal. Skipped where Popen's
       start_new_session already did it.
    2. cgroup join (still root): the account's groups are root's files, so only root can move
       a process in; joined before any step that lets user code run, the student's uid is never
       outside its limits, and can never leave them. `after_join` runs next, while stdout and
       stderr are still the fork server's, so a refusal it raises (the kernel's pids.max
       check) is logged where the admin reads it.
    3. output (still root): fds 1 and 2 become the user's log (`output`, a path: opened by
       root, since the log folder is root's 0750), or /dev/null (None), so no descriptor of the
       hub's own log survives into a process the student controls. KEEP leaves them.
    4. nice (still root): an increment, so a configured negative nice still applies as before;
       a kernel passes how much nicer its server is than the fork server, never less than 0.
    5. resource limits (a kernel: its server's, only ever tighter than ours), before the uid
       change so that a hard limit is settled while we can still choose it.
    6. setgroups, setgid, setuid: groups and gid need root, so they come before the uid; the
       uid last because it is irreversible. From here on nothing can widen its rights.
    7. dumpable (a kernel): setuid() made the process undumpable, which hides /proc/<pid> from
       the user's own server (psutil, usage); an exec'd kernel is dumpable, so this one is too.
    8. umask: what the student's files are created with (admins': group-writable).
    9. chdir, as the student: a folder the student may not enter is an error, not a door
       root opened for them.
    """
    if os.getsid(0) != os.getpid():
        os.setsid()
    if cgroup_dirs:
        cgroups.join(list(cgroup_dirs))
    if after_join is not None:
        after_join()
    if output != KEEP:
        redirect_output(output)
    if nice:
        os.nice(nice)
    for limit, (soft, hard) in (rlimits or {}).items():
        own_soft, own_hard = resource.getrlimit(limit)
        hard = tighter(hard, own_hard)
        resource.setrlimit(limit, (tighter(tighter(soft, own_soft), hard), hard))
    if identity is not None:
        os.setgroups(list(identity.groups))
        os.setgid(identity.gid)
        os.setuid(identity.uid)
    if dumpable:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    if umask is not None:
        os.umask(umask)
    if cwd is not None:
        os.chdir(cwd)


def name_process(name: str) -> None:
    """Give a forked process its own name in ps, top and /proc/PID/comm ("mlw-server",
    "mlw-kernel"): forks keep the fork server's command line, so without it an admin (and the
    benchmarks' CPU split) cannot tell a student's server from her kernels."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def tighter(a: int, b: int) -> int:
    """The tighter of two resource limits (RLIM_INFINITY is no limit)."""
    if a == resource.RLIM_INFINITY:
        return b
    return a if b == resource.RLIM_INFINITY else min(a, b)


def fresh_signals() -> None:
    """In a child the fork server forked: the signal handling of a fresh process, not the fork
    server's (which ignores SIGCHLD and SIGINT). SIGPIPE stays ignored, as Python starts with it.
    (A cold server gets this from exec.)"""
    for sig in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
