"""The hub's handle on the fork server (fastpath.server): start it, ask it for a server.

The only module of the fast path that runs in the hub's own process (with hub/spawner.py's
cold-start preexec function, which calls fastpath.privileges).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

from . import framing
from .protocol import SERVER_MODULE, SERVER_SOCKET, ForkRequest


class ForkServerUnavailable(RuntimeError):
    pass


# The only parts of the hub's environment the fork server gets. Forked kernels run user code in
# a copy of its memory, so nothing else may be there: an admin's MLWORKSHOP_HUB__DB_URL with a
# password, a JUPYTERHUB_CRYPT_KEY, a cloud token in the shell that started the hub. The list is
# what a cold server gets too (JupyterHub's env_keep): an interpreter-start variable that differed
# between the fork server and a user's server would send every kernel down the cold path.
_KEPT_ENV = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "PYTHONPATH", "LD_LIBRARY_PATH")
_KEPT_ENV_PREFIXES = ("LC_",)


def fork_server_env(environ: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k in _KEPT_ENV or k.startswith(_KEPT_ENV_PREFIXES)}


class ForkServer:
    def __init__(self, socket_path: Path):
        self.socket_path = socket_path
        self.proc: subprocess.Popen | None = None

    def start(self, kernel_socket: Path | None = None, student_prefix: str = "") -> None:
        """Start it in the background; it preloads JupyterLab (and, with `kernel_socket`, IPython
        kernels) while the hub finishes starting."""
        if self.proc is not None and self.proc.poll() is None:
            return
        cmd = [sys.executable, "-m", SERVER_MODULE, str(self.socket_path)]
        if kernel_socket is not None:
            kernel_socket.parent.mkdir(parents=True, exist_ok=True)
            kernel_socket.parent.chmod(0o755)  # students' servers connect; the socket checks who
            cmd += ["--kernels", str(kernel_socket), "--students", student_prefix]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,  # closed when the hub exits: the fork server follows
            start_new_session=True,
            env=fork_server_env(dict(os.environ)),
            cwd="/",
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def fork(self, request: ForkRequest, wait_ready: float = 60.0) -> int:
        """The pid of a new server process, or ForkServerUnavailable."""
        if not self.running:
            raise ForkServerUnavailable("the fork server is not running")
        line = framing.encode(request.to_message())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_ready
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, str(self.socket_path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if not self.running or loop.time() > deadline:
                    raise ForkServerUnavailable("the fork server did not become ready") from None
                await asyncio.sleep(0.05)
            except BaseException:
                sock.close()
                raise
        try:
            await loop.sock_sendall(sock, line)
            reply, _ = await framing.recv_async(sock, 30)
        finally:
            sock.close()
        if reply is None or "pid" not in reply:
            raise ForkServerUnavailable(
                (reply or {}).get("error", "no answer from the fork server")
            )
        return int(reply["pid"])


_servers: dict[str, ForkServer] = {}


def forkserver_for(state_dir: str | os.PathLike) -> ForkServer:
    """One fork server per hub process and site."""
    key = str(state_dir)
    if key not in _servers:
        _servers[key] = ForkServer(Path(state_dir) / SERVER_SOCKET)
    return _servers[key]
