"""The fork server: one process that has already imported JupyterLab forks each user's server.

A cold JupyterLab start costs ~2.3 CPU-seconds, most of it imports, and each server then holds
~105 MiB of private memory. Forked from a process that imported everything once (and froze its
objects out of the garbage collector's reach), a server skips those imports and shares the
imported pages with every other server copy-on-write.

Each child still becomes an ordinary server of its own: its own session, the student's uid, gid
and groups (set before any user code runs), its own environment, token and working directory.

Protocol (a Unix socket only root can reach, in <site>/state/): one JSON request per connection,
{"uid", "gid", "groups", "umask", "nice", "cwd", "env", "argv"}, answered by {"pid": N}. The fork server
forks before reading it, so no student's token ever sits in the memory later servers inherit.
The server exits when the hub that started it goes away (its stdin closes).
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import selectors
import signal
import socket
import sys

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
    "mlworkshop.singleuser",
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
)
# Read at import time by jupyterhub.singleuser: the same for every user, so never preloaded with a value.
_IMPORT_TIME_ENV = ("JUPYTERHUB_SINGLEUSER_APP", "JUPYTERHUB_SINGLEUSER_EXTENSION")


def preload() -> None:
    for name in _IMPORT_TIME_ENV:
        os.environ.pop(name, None)
    for module in PRELOAD:
        try:
            importlib.import_module(module)
        except ImportError as exc:  # an optional extension missing is not fatal
            print(f"[forkserver] could not preload {module}: {exc}", file=sys.stderr)
    gc.collect()
    gc.freeze()  # keep the collector from touching (and so copying) the shared pages


def become_user_server(request: dict) -> None:
    """In the forked child: take on the user's identity and environment, then run the server."""
    os.setsid()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.nice(request.get("nice", 0))
    if request.get("uid") is not None:
        os.setgid(request["gid"])
        os.setgroups(request["groups"])
        os.setuid(request["uid"])
    os.umask(request.get("umask", 0o022))
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = list(request["argv"])
    from mlworkshop.singleuser import main

    main()


def _read_request(conn: socket.socket) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            raise ValueError("connection closed before a whole request arrived")
        data += chunk
    return json.loads(data)


def _serve_one(conn: socket.socket, listener: socket.socket, hub_pipe: int, selector: selectors.BaseSelector) -> None:
    """Fork first, read later: the request carries the student's API token, and anything the
    fork server itself ever read would be copied into every server forked after it. Only the
    child reads it, answers with its own pid, and becomes the server."""
    pid = os.fork()
    if pid != 0:
        conn.close()
        return
    code = 1
    try:  # child: nothing of the fork server may leak into a user's process
        selector.close()
        listener.close()
        os.close(hub_pipe)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        request = _read_request(conn)
        conn.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")
        conn.close()
        become_user_server(request)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # noqa: BLE001 - report, then leave without cleanup
        print(f"[forkserver] a server failed to start: {exc!r}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def serve(socket_path: str) -> None:
    preload()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel: no zombies
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the hub's Ctrl-C is the hub's; we follow stdin
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o077)
    listener.bind(socket_path)
    os.umask(old_umask)
    listener.listen(64)
    hub_pipe = sys.stdin.fileno()
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(hub_pipe, selectors.EVENT_READ, "hub")
    print(f"[forkserver] ready on {socket_path} (pid {os.getpid()})", file=sys.stderr, flush=True)
    while True:
        for key, _ in selector.select():
            if key.data == "hub":
                if not os.read(hub_pipe, 4096):
                    os.unlink(socket_path)
                    return  # the hub is gone: its successor starts a fresh fork server
                continue
            conn, _ = listener.accept()
            try:
                _serve_one(conn, listener, hub_pipe, selector)
            except OSError as exc:
                print(f"[forkserver] could not fork: {exc!r}", file=sys.stderr)
                conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])
