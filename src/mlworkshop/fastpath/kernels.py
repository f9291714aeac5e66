"""Kernels forked from the fork server: the kernel half of the class-rush fast path.

A cold IPython kernel imports IPython, ipykernel, zmq and debugpy before it answers: ~0.5
CPU-seconds on an idle machine, several seconds of wall time when a whole class opens its first
notebook at once. The fork server has imported all of that already, so a user's server asks it
(through `fastpath.provisioner`) to fork the kernel instead.

Who may ask: any local process can connect to <site>/run/kernels.sock, so the forked child first
reads the peer's credentials from the kernel (SO_PEERCRED), refuses root and every account that
is not one of the hub's students, and takes on exactly the identity of the process that asked:
uid, gid, supplementary groups, umask, nice value and resource limits, read from /proc while it
is still root. Only then does it read the request (a KernelRequest, fastpath.protocol, plus the
server's stdout and stderr passed as file descriptors), so nothing a request says can widen its
rights: a forked kernel can do what the server that asked could do, and nothing more. The drop
itself is fastpath.privileges.drop_privileges, the same as a server's.

Before it drops to the peer's uid it joins the account's cgroup (mlworkshop.cgroups), where the
hub put that account's server: the kernel shares its server's memory, CPU and process limits, and
a student who keeps asking for kernels is stopped at the group's pids.max. A peer that connects
and then sends no whole request within KERNEL_REQUEST_TIMEOUT seconds (protocol) is dropped: an
idle or half-open connection must not hold a forked process.

The connection then stays open for the kernel's life: the server sees the kernel die as
end-of-file, and the kernel exits when its server goes away (what ipykernel's parent poller does
for a kernel that is the server's child; a forked one is the fork server's child).
"""

from __future__ import annotations

import os
import pwd
import resource
import socket
import struct
import sys
import threading
from dataclasses import dataclass, field

from .. import cgroups, pysite
from . import framing
from .privileges import Identity, drop_privileges, fresh_signals, name_process
from .protocol import (
    KERNEL_REQUEST_TIMEOUT,
    KernelRequest,
    cold_reply,
    error_reply,
    exit_report,
    pid_reply,
    ready_report,
)

# Imported by a starting IPython kernel (measured: a cold kernel's sys.modules after start).
# Never anything that reads the user's settings when imported (matplotlib reads its rc file,
# MPLBACKEND and its config folder): here that would be root's, not the student's.
PRELOAD = (
    "ipykernel.kernelapp",
    "mlworkshop.fastpath.kernel_app",
    "mlworkshop.local_kernel",
    "ipykernel.ipkernel",
    "ipykernel.zmqshell",
    "ipykernel.comm",
    "ipykernel.debugger",
    "ipykernel.eventloops",
    "ipykernel.iostream",
    "ipykernel.heartbeat",
    "ipykernel.kernelspec",
    "IPython",
    "IPython.core.interactiveshell",
    "IPython.core.completer",
    "IPython.extensions.storemagic",  # loaded by every shell at its start
    "IPython.core.history",
    "IPython.core.magics",
    "IPython.core.oinspect",
    "IPython.core.debugger",
    "comm",
    "debugpy",
    "debugpy.server.api",
    "sqlite3",
    "pdb",
    "pydoc",
    "mlworkshop.fastpath.provisioner",  # what a user's server itself imports for its first kernel
)


def share_first_cell_work() -> None:
    """What a forked kernel's first cell would work out for itself, done once in the fork server:
    IPython's input transformer tokenizes every cell, and the tokenizer compiles its grammar into
    one large regular expression the first time (~6 ms of every kernel's first `1+1`, cProfile of
    a forked kernel). Only warms the caches tokenize and re keep themselves."""
    from IPython.core.inputtransformer2 import TransformerManager

    TransformerManager().transform_cell("1 + 1\n")


# What only a new interpreter reads (the dynamic linker, Python's start-up): a request that sets
# any of these differently from the fork server gets a fresh process instead of a fork.
_START_TIME_PREFIXES = ("LD_", "PYTHON", "MALLOC_", "GLIBC_")
# /proc/<pid>/limits names of the limits a kernel takes over from its server
RLIMITS = {
    "Max cpu time": resource.RLIMIT_CPU,
    "Max file size": resource.RLIMIT_FSIZE,
    "Max data size": resource.RLIMIT_DATA,
    "Max stack size": resource.RLIMIT_STACK,
    "Max core file size": resource.RLIMIT_CORE,
    "Max processes": resource.RLIMIT_NPROC,
    "Max open files": resource.RLIMIT_NOFILE,
    "Max locked memory": resource.RLIMIT_MEMLOCK,
    "Max address space": resource.RLIMIT_AS,
}
MAX_REQUEST = framing.MAX_FRAME  # bytes: an environment and an argv, never more


class PeerRefused(Exception):
    """The process that asked may not have a kernel forked for it."""


@dataclass
class PeerIdentity:
    """Everything a kernel inherits from the server that asked for it."""

    pid: int
    uid: int
    gid: int
    groups: list[int] = field(default_factory=list)
    umask: int = 0o022
    nice: int = 0
    rlimits: dict[int, tuple[int, int]] = field(default_factory=dict)


def parse_proc_status(text: str) -> dict[str, str]:
    """/proc/<pid>/status as a mapping of field name to its text."""
    fields = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


def parse_proc_limits(text: str) -> dict[int, tuple[int, int]]:
    """/proc/<pid>/limits (soft and hard columns) for the limits in RLIMITS."""
    limits = {}
    for line in text.splitlines():
        for name, limit in RLIMITS.items():
            if line.startswith(name + " "):
                soft, hard = line[len(name) :].split()[:2]
                limits[limit] = tuple(
                    resource.RLIM_INFINITY if v == "unlimited" else int(v) for v in (soft, hard)
                )
    return limits


def identity_from_status(pid: int, uid: int, gid: int, status: dict[str, str]) -> PeerIdentity:
    """The peer's identity, checked against the credentials the kernel vouched for: a pid reused
    by another account between connect() and now is refused, not trusted."""
    real_uid, eff_uid = (int(x) for x in status.get("Uid", "-1 -1").split()[:2])
    eff_gid = int(status.get("Gid", "-1 -1").split()[1])
    if real_uid != uid or eff_uid != uid or eff_gid != gid:
        raise PeerRefused(f"process {pid} changed identity after it connected")
    groups = [int(g) for g in status.get("Groups", "").split()]
    return PeerIdentity(
        pid=pid, uid=uid, gid=gid, groups=groups, umask=int(status.get("Umask", "0022"), 8)
    )


def check_peer(uid: int, own_uid: int, student_prefix: str) -> None:
    """Root hub: only the hub's student accounts. Hub not root: only its own user."""
    if own_uid != 0:
        if uid != own_uid:
            raise PeerRefused(f"uid {uid} is not the hub's user")
        return
    if uid == 0:
        raise PeerRefused("no kernel is forked for root")
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        raise PeerRefused(f"uid {uid} has no account") from None
    if not student_prefix or not name.startswith(student_prefix):
        raise PeerRefused(f"account {name!r} is not one of this hub's users ({student_prefix}*)")


def read_peer(conn: socket.socket, student_prefix: str) -> PeerIdentity:
    """Run as root in the forked child, before anything from the peer is read."""
    pid, uid, gid = struct.unpack(
        "3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    )
    check_peer(uid, os.getuid(), student_prefix)
    try:
        with open(f"/proc/{pid}/status") as f:
            ident = identity_from_status(pid, uid, gid, parse_proc_status(f.read()))
        ident.nice = os.getpriority(os.PRIO_PROCESS, pid)
        with open(f"/proc/{pid}/limits") as f:
            ident.rlimits = parse_proc_limits(f.read())
    except (FileNotFoundError, ProcessLookupError):
        raise PeerRefused(f"process {pid} exited before its kernel was forked") from None
    return ident


def privileges_of(ident: PeerIdentity) -> dict:
    """drop_privileges()'s arguments that make a kernel its peer: the uid, gid and groups (when
    we are root), the peer's limits (each only ever tighter than ours), umask, its nice value
    (never a higher priority than the fork server's own), and dumpable, as an exec'd kernel is.
    Its memory holds nothing but imported modules: the fork server is started with a scrubbed
    environment, so /proc/<pid> readable by the user's own server (psutil, usage) is safe."""
    own_nice = os.getpriority(os.PRIO_PROCESS, 0)
    return dict(
        identity=Identity(ident.uid, ident.gid, ident.groups) if os.getuid() == 0 else None,
        nice=max(0, ident.nice - own_nice),
        rlimits=ident.rlimits,
        dumpable=True,
        umask=ident.umask,
    )


def read_request(
    conn: socket.socket, timeout: float = KERNEL_REQUEST_TIMEOUT
) -> tuple[KernelRequest, list[int]]:
    """The whole request within `timeout` seconds (a deadline for all of it, so a peer trickling
    a byte at a time is dropped too), with the server's stdout and stderr; TimeoutError or
    ValueError (FrameError, RequestError) otherwise, its descriptors closed."""
    message, fds = framing.recv(conn, timeout, max_fds=framing.MAX_FDS, max_bytes=MAX_REQUEST)
    try:
        return KernelRequest.from_message(message), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def account_cgroup_dirs(ident: PeerIdentity) -> list[str]:
    """As root: the groups the hub made for the peer's account (named after the account the
    kernel vouched for, nothing the peer sent), for drop_privileges() to join. No group (the
    hub is not root, cgroups unavailable, or the account has no server) leaves the kernel where
    the fork server is, as before."""
    if os.getuid() != 0:
        return []
    hierarchy = cgroups.detect()
    if hierarchy is None:
        return []
    try:
        return [str(d) for d in cgroups.existing_dirs(hierarchy, pwd.getpwuid(ident.uid).pw_name)]
    except (KeyError, cgroups.CgroupError) as exc:
        raise PeerRefused(f"could not join the account's cgroup: {exc}") from None


def check_pids_limit(ident: PeerIdentity) -> None:
    """Run by drop_privileges() right after the join: PeerRefused when the account's group is
    already at its pids limit (a student who keeps asking for kernels)."""
    hierarchy = cgroups.detect()
    account = pwd.getpwuid(ident.uid).pw_name
    if hierarchy is not None and cgroups.pids_over_limit(hierarchy, account):
        raise PeerRefused(
            f"{account} already runs as many processes as its limit allows (pids.max)"
        )


def is_preloaded_kernel(argv: list[str]) -> bool:
    """The standard IPython kernel of this very Python: what the fork server has preloaded."""
    return (
        len(argv) >= 3 and argv[0] == sys.executable and argv[1:3] == ["-m", "ipykernel_launcher"]
    )


def needs_fresh_process(argv: list[str], env: dict[str, str], startup_env: dict[str, str]) -> bool:
    """A fork is only the same as `python -m ipykernel_launcher` for this very Python with the
    interpreter-start settings the fork server itself had."""
    if not is_preloaded_kernel(argv):
        return True
    keys = {k for k in (*env, *startup_env) if k.startswith(_START_TIME_PREFIXES)}
    return any(env.get(k) != startup_env.get(k) for k in keys)


def _report_ready(conn: socket.socket) -> None:
    try:
        framing.send(conn, ready_report())
    except OSError:
        pass  # the server is gone: the watch in _exit_when_server_goes ends this kernel


def _exit_when_server_goes(conn: socket.socket) -> None:
    def watch():
        while True:
            try:
                if conn.recv(4096):
                    continue
            except OSError:
                pass
            os._exit(1)  # as ipykernel's parent poller does when the server is gone

    threading.Thread(target=watch, name="mlw-server-watch", daemon=True).start()


def become_kernel(conn: socket.socket, student_prefix: str, startup_env: dict[str, str]) -> int:
    """In the child the fork server forked for this connection. Returns the exit code."""
    fresh_signals()
    try:
        ident = read_peer(conn, student_prefix)
        dirs = account_cgroup_dirs(ident)
        # The fork server's stdout and stderr are the hub's log: gone (output=None, /dev/null)
        # before the student's uid could reach them. The server's own fds 1 and 2 (its user's
        # log) replace /dev/null below, once the request that carries them is read.
        drop_privileges(
            cgroup_dirs=dirs,
            after_join=(lambda: check_pids_limit(ident)) if dirs else None,
            output=None,
            **privileges_of(ident),
        )
    except (PeerRefused, cgroups.CgroupError) as exc:
        why = (
            str(exc)
            if isinstance(exc, PeerRefused)
            else f"could not join the account's cgroup: {exc}"
        )
        framing.send(conn, error_reply(why))
        print(f"[forkserver] kernel refused: {why}", file=sys.stderr, flush=True)
        return 1
    # From here on, everything runs with the server's rights only.
    name_process("mlw-kernel")
    try:
        request, fds = read_request(conn)
    except (TimeoutError, ValueError) as exc:
        print(
            f"[forkserver] kernel request from pid {ident.pid} dropped: {exc}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    for target, fd in zip((1, 2), fds, strict=True):
        os.dup2(fd, target)
    for fd in fds:
        os.close(fd)
    env = {
        k: v for k, v in request.env.items() if k != "JPY_PARENT_PID"
    }  # we watch the server ourselves
    os.environ.clear()
    os.environ.update(env)
    os.chdir(request.cwd)
    argv = list(request.argv)
    if needs_fresh_process(argv, env, startup_env):
        framing.send(conn, cold_reply("this kernel needs a fresh Python process"))
        return 0
    framing.send(conn, pid_reply(os.getpid()))
    _exit_when_server_goes(conn)
    import ipykernel

    launcher = os.path.join(
        os.path.dirname(os.path.dirname(ipykernel.__file__)), "ipykernel_launcher.py"
    )
    # parent_handle 1: "my parent is init, do not poll it" (we watch the server ourselves above)
    sys.argv = [launcher, *argv[3:], "--IPKernelApp.parent_handle=1"]
    # this user's site-packages (not root's) and the shared folder, as a fresh interpreter with
    # this environment would have them (mlworkshop.pysite)
    pysite.apply(env)
    from .kernel_app import ForkedKernelApp

    try:
        app = ForkedKernelApp.instance()  # what launch_instance() does, with the report between
        app.initialize()
        app.when_listening(lambda: _report_ready(conn))
        app.start()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    try:
        framing.send(conn, exit_report(code))
    except OSError:
        pass
    return code
