"""The fork server: one process that has already imported JupyterLab forks each user's server.

A cold JupyterLab start costs ~2.3 CPU-seconds, most of it imports, and each server then holds
~105 MiB of private memory. Forked from a process that imported everything once (and froze its
objects out of the garbage collector's reach), a server skips those imports and shares the
imported pages with every other server copy-on-write.

Each child still becomes an ordinary server of its own: its own session, the student's uid, gid
and groups (set before any user code runs), its own environment, token and working directory.

Protocol (fastpath.protocol): a Unix socket only root can reach, <site>/state/forkserver.sock;
one ForkRequest per connection, answered by {"pid": N}. The fork server forks before reading it,
so no student's token ever sits in the memory later servers inherit. The child checks the
request (ForkRequest.from_message) and becomes the user (fastpath.privileges.drop_privileges),
its stdout and stderr the user's log file (mlworkshop.userlogs), never the hub's.
The server exits when the hub that started it goes away (its stdin closes).

With `--kernels PATH` it also forks IPython kernels for the users' servers on a second socket
(fastpath.kernels says who may ask and what a kernel inherits). The hub starts it with a
scrubbed environment: a forked kernel runs user code in a copy of this process's memory.

Started as `python -m mlworkshop.fastpath.server` (fastpath.client). It imports nothing of the
hub or JupyterHub's hub side before it preloads (tests/unit/test_fastpath_imports.py).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import resource
import selectors
import signal
import socket
import sys
import threading
from collections.abc import Callable

from .. import pysite
from ..lazy_imports import defer_rfc3987_syntax
from . import framing, prefork
from .privileges import Identity, drop_privileges, fresh_signals, name_process
from .protocol import SERVER_REQUEST_TIMEOUT, ForkRequest, RequestError, error_reply, pid_reply

PRELOAD = (
    "jupyter_server.serverapp",
    "jupyter_server.services.kernels.websocket",
    "jupyter_server.services.contents.largefilemanager",
    "jupyterlab",
    "jupyterlab.labapp",
    "jupyter_lsp",
    "jupyter_lsp.serverextension",
    "jupyter_server_terminals",
    "notebook_shim",
    "jupyterhub.singleuser",
    "jupyterhub.singleuser.extension",
    "mlworkshop.fastpath.singleuser",
    "mlworkshop.kernel_sockets",  # every local server's kernel manager (hub/server_config)
    "mlworkshop.fastpath.kernel_websocket",  # and its kernels' websocket connection
    # imported while a server initialises or serves its first requests (measured: without these,
    # each child imported 24 more modules of its own)
    "jinja2.ext",
    "jupyter_core.migrate",
    "jupyter_server.kernelspecs.handlers",
    "jupyter_server.nbconvert.handlers",
    "jupyter_server.services.api.handlers",
    "jupyter_server.services.config.handlers",
    "jupyter_server.services.contents.handlers",
    "jupyter_server.services.events.handlers",
    "jupyter_server.services.kernels.handlers",
    "jupyter_server.services.kernels.connection.channels",
    "jupyter_server.services.kernelspecs.handlers",
    "jupyter_server.services.nbconvert.handlers",
    "jupyter_server.services.security.handlers",
    "jupyter_server.services.sessions.handlers",
    "jupyter_server.services.shutdown",
    "jupyter_server.view.handlers",
    "jupyter_server_terminals.handlers",
    "jupyter_client.ioloop",
    "nbformat",
    "tornado.platform.asyncio",
    "psutil",  # jupyter_client.localinterfaces, at each server's start
    "anyio._backends._asyncio",  # at a server's first run_sync (JupyterLab's first requests)
)
# Read at import time by jupyterhub.singleuser: the same for every user, so never preloaded with a value.
_IMPORT_TIME_ENV = ("JUPYTERHUB_SINGLEUSER_APP", "JUPYTERHUB_SINGLEUSER_EXTENSION")


def preload(modules: tuple[str, ...] = PRELOAD) -> None:
    for name in _IMPORT_TIME_ENV:
        os.environ.pop(name, None)
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[
            0
        ]  # `-m` put the hub's folder first; kernels put their own back, as ipykernel does
    defer_rfc3987_syntax()  # 1.1 s of jsonschema's import, for a format no server checks
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:  # an optional extension missing is not fatal
            print(f"[forkserver] could not preload {module}: {exc}", file=sys.stderr)
    try:  # what every server would work out for itself on JupyterLab's first load
        from .singleuser import share_installed_lookups
        from .static import precompress, serve_precompressed

        share_installed_lookups()
        written, fresh = precompress()
        if written:
            print(f"[forkserver] compressed {written} static files ({fresh} were)", file=sys.stderr)
        serve_precompressed()
    except Exception as exc:  # noqa: BLE001 - each server then works it out itself
        print(f"[forkserver] exporters or schema checks not shared: {exc}", file=sys.stderr)
    if threading.active_count() != 1:  # fork() copies only the calling thread: refuse to go on
        raise SystemExit(
            f"[forkserver] preloading started threads {threading.enumerate()}; cannot fork safely"
        )
    gc.collect()
    gc.freeze()  # keep the collector from touching (and so copying) the shared pages


def become_user_server(request: ForkRequest) -> None:
    """In the forked child: take on the user's identity and environment, then run the server."""
    fresh_signals()
    identity = None if request.uid is None else Identity(request.uid, request.gid, request.groups)
    drop_privileges(
        identity,
        cgroup_dirs=request.cgroups,
        output=request.log,
        nice=request.nice,
        umask=request.umask,
        cwd=request.cwd,
    )
    name_process("mlw-server")
    os.environ.clear()
    os.environ.update(request.env)
    pysite.apply(request.env)  # the student's own and the shared packages, as a fresh start would
    sys.argv = list(request.argv)
    from ..kernel_sockets import remove_private_folders
    from .singleuser import main

    try:
        main()
    finally:  # this child ends with os._exit (_serve_one): no atexit handlers run
        remove_private_folders()


def _serve_one(
    conn: socket.socket, inherited: list, hub_pipe: int, become: Callable[[socket.socket], int]
) -> None:
    """Fork first, read later: the request carries the student's API token, and anything the
    fork server itself ever read would be copied into every server forked after it. Only the
    child reads it, answers with its own pid, and becomes the server (or the kernel)."""
    pid = os.fork()
    if pid != 0:
        conn.close()
        return
    code = 1
    try:  # child: nothing of the fork server may leak into a user's process
        for obj in inherited:
            obj.close()
        os.close(hub_pipe)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        code = become(conn)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # noqa: BLE001 - report, then leave without cleanup
        import traceback

        print(f"[forkserver] a {become.__name__} child failed: {exc!r}", file=sys.stderr)
        traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def server_child(conn: socket.socket) -> int:
    try:
        message, _ = framing.recv(conn, timeout=SERVER_REQUEST_TIMEOUT)
        request = ForkRequest.from_message(message)
    except (TimeoutError, ValueError) as exc:  # FrameError and RequestError are ValueErrors
        print(f"[forkserver] server request refused: {exc}", file=sys.stderr, flush=True)
        if isinstance(exc, RequestError):
            framing.send(conn, error_reply(f"the fork server refused the request: {exc}"))
        return 1
    framing.send(conn, pid_reply(os.getpid()))
    conn.close()
    become_user_server(request)
    return 0


def _listen(path: str, mode: int) -> socket.socket:
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)
    listener.bind(path)
    os.umask(old_umask)
    os.chmod(path, mode)
    listener.listen(128)
    return listener


def serve(socket_path: str, kernel_socket: str | None = None, student_prefix: str = "") -> None:
    if os.geteuid() == 0:
        os.setpriority(
            os.PRIO_PROCESS, 0, 0
        )  # servers' nice is relative to ours, whatever the hub's is
    modules = PRELOAD
    if kernel_socket:
        from . import kernels

        os.environ.setdefault(
            "PYDEVD_DISABLE_FILE_VALIDATION", "1"
        )  # debugpy's frozen-modules notice
        modules = PRELOAD + kernels.PRELOAD
    preload(modules)
    if kernel_socket:
        from .kernel_app import list_modules_once

        kernels.share_first_cell_work()
        list_modules_once()
    filled = prefork.fill_free_space()  # last: what preloading left free
    gc.freeze()  # what came after preload() is shared as everything it made
    print(f"[forkserver] taken before forking: {filled}", file=sys.stderr, flush=True)
    if "matplotlib" in sys.modules:  # it would carry root's settings into every kernel
        raise SystemExit("[forkserver] preloading imported matplotlib; remove what imported it")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (hard, hard)
    )  # kernels take the lower of ours and their server's
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel: no zombies
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the hub's Ctrl-C is the hub's; we follow stdin
    listener = _listen(socket_path, 0o600)
    hub_pipe = sys.stdin.fileno()
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, server_child)
    inherited: list = [selector, listener]
    paths = [socket_path]
    if kernel_socket:
        startup_env = dict(os.environ)
        kernel_listener = _listen(
            kernel_socket, 0o666
        )  # anyone may connect; the child checks who it is

        def kernel_child(conn: socket.socket) -> int:
            return kernels.become_kernel(conn, student_prefix, startup_env)

        selector.register(kernel_listener, selectors.EVENT_READ, kernel_child)
        inherited.append(kernel_listener)
        paths.append(kernel_socket)
    selector.register(hub_pipe, selectors.EVENT_READ, None)
    print(
        f"[forkserver] ready on {', '.join(paths)} (pid {os.getpid()})", file=sys.stderr, flush=True
    )
    while True:
        for key, _ in selector.select():
            if key.data is None:
                if not os.read(hub_pipe, 4096):
                    for path in paths:
                        os.unlink(path)
                    return  # the hub is gone: its successor starts a fresh fork server
                continue
            conn, _ = key.fileobj.accept()
            try:
                _serve_one(conn, inherited, hub_pipe, key.data)
            except OSError as exc:
                print(f"[forkserver] could not fork: {exc!r}", file=sys.stderr)
                conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="mlworkshop's fork server (started by the hub)")
    parser.add_argument("socket")
    parser.add_argument("--kernels", help="also fork kernels for users' servers on this socket")
    parser.add_argument(
        "--students", default="", help="account prefix of the users kernels are forked for"
    )
    args = parser.parse_args()
    serve(args.socket, args.kernels, args.students)


if __name__ == "__main__":
    main()
