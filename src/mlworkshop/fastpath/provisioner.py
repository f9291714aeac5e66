"""The kernel provisioner of mlworkshop's user servers: kernels forked by the fork server.

Registered as the `mlworkshop-fork` provisioner (an entry point in pyproject.toml) and made the
default for local-backend servers (JUPYTER_DEFAULT_PROVISIONER_NAME). With no fork server to ask
(other backends, `fork_kernels: false`, a server started cold, the socket gone) or for a kernel
that needs a fresh process, it is jupyter_client's own LocalProvisioner, unchanged.

A forked kernel is not this server's child, so the handle here stands in for subprocess.Popen:
alive while the connection to the kernel is open and its pid exists; signals go to its process
group (same account, so the kernel permits them).

A kernel of either kind that dies while its server's cgroup counts one more OOM kill than when it
started was killed for memory: the server's log says so with the limit (OomWatch), instead of
leaving the student with an unexplained restart.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import socket
import sys
import time
from typing import Any

from jupyter_client.connect import KernelConnectionInfo
from jupyter_client.provisioning import LocalProvisioner

from .. import cgroups
from . import framing
from .kernels import is_preloaded_kernel
from .protocol import SOCKET_ENV, KernelRequest

FORK_TIMEOUT = 30.0
KERNEL_READY_TIMEOUT = 20.0  # a kernel still not bound by then is used as it is


class ForkRefused(RuntimeError):
    """The fork server would not or could not fork this kernel."""


def forkable(cmd: list[str]) -> bool:
    """Worth asking the fork server (it decides with the environment too: needs_fresh_process)."""
    return is_preloaded_kernel(cmd)


class ForkedKernel:
    """A Popen look-alike for a kernel the fork server forked."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int, conn: socket.socket):
        self.pid = pid
        self.returncode: int | None = None
        self._conn = conn
        self._reported: int | None = None
        self._signalled: int | None = None
        self._buffer = framing.LineBuffer()
        self.listening = False  # reported ready: in its event loop, every socket bound

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        closed = False
        while True:
            try:
                chunk = self._conn.recv(4096)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                chunk = b""
            if not chunk:
                closed = True
                break
            self._buffer.data += chunk  # never refused: the kernel's exit must still be seen
        while True:
            try:
                line = self._buffer.pop()
                if line is None:
                    break
                self._reported = int(framing.decode(line)["exit"])
            except (ValueError, TypeError, KeyError):
                pass  # not an exit report (FrameError is a ValueError)
        if closed or not _pid_exists(self.pid):
            self._conn.close()
            if self._reported is not None:
                self.returncode = self._reported
            else:
                self.returncode = -self._signalled if self._signalled else 1
        return self.returncode

    async def until_ready(self, timeout: float) -> None:
        """Until the kernel reports that it listens (protocol.ready_report: its event loop runs,
        every socket bound), ends, or `timeout` passes; whichever comes, what follows is poll()'s
        to read. The server connects to the kernel's sockets as soon as the kernel is started:
        before they are bound, ZeroMQ tries again only 100 ms later, and the kernel's first
        status messages are lost on the way (the first cell of every forked kernel then waited
        half a second, fastpath/kernel_app.py). A kernel that reported is `listening`."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    line = self._buffer.pop()
                    if line is None:
                        chunk = await loop.sock_recv(self._conn, 65536)
                        if not chunk:
                            return  # gone before it was ready: poll() sees the end
                        self._buffer.data += chunk
                        continue
                    message = framing.decode(line)
                    if "exit" in message:
                        self._reported = int(message["exit"])
                        return
                    if message.get("ready"):
                        self.listening = True
                        return
        except (TimeoutError, OSError, ValueError, TypeError):
            return  # slow or garbled: the kernel is used as it is, as before the report existed

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"kernel {self.pid} still running after {timeout} s")
            time.sleep(0.05)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is not None:
            return
        os.kill(self.pid, signum)
        if signum in (signal.SIGKILL, signal.SIGTERM):
            self._signalled = signum

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def reported_listening(kernel_manager: Any) -> bool:
    """The kernel of this jupyter_client KernelManager was forked and said it listens
    (ForkedKernel.listening); False for any kernel started another way."""
    process = getattr(getattr(kernel_manager, "provisioner", None), "process", None)
    return bool(getattr(process, "listening", False))


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def fork_kernel(
    socket_path: str, cmd: list[str], env: dict[str, str], cwd: str
) -> ForkedKernel:
    """Ask the fork server for a kernel: our identity travels in the socket, our output fds with
    the request. ForkRefused when it cannot or will not; the caller then starts one cold."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, socket_path), FORK_TIMEOUT)
        request = framing.encode(
            KernelRequest(argv=cmd, env=env, cwd=os.path.abspath(cwd)).to_message()
        )
        fds = [sys.stdout.fileno(), sys.stderr.fileno()]
        # the first write to a fresh Unix socket fits its buffer: the fds go with it, no waiting
        sent = socket.send_fds(sock, [request], fds)
        if sent != len(request):
            await loop.sock_sendall(sock, request[sent:])
        reply, rest = await framing.recv_async(sock, FORK_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:  # ValueError: a garbled reply, a bad request
        sock.close()
        raise ForkRefused(f"the fork server at {socket_path} did not answer: {exc}") from exc
    except BaseException:
        sock.close()
        raise
    if reply is None:
        sock.close()
        raise ForkRefused("the fork server closed the connection")
    if "pid" not in reply:
        sock.close()
        raise ForkRefused(reply.get("error") or reply.get("cold") or "no pid in the answer")
    kernel = ForkedKernel(int(reply["pid"]), sock)
    kernel._buffer = rest
    await kernel.until_ready(KERNEL_READY_TIMEOUT)
    return kernel


class OomWatch:
    """Was a kernel that died killed by the OOM killer of its server's cgroup? The cgroup counts
    its kills (memory.oom_control / memory.events, readable by the student): one more than when
    the kernel started, and the kernel is gone, is the best answer there is (a SIGKILL says
    nothing of who sent it)."""

    def __init__(self):
        self.hierarchy = cgroups.detect()
        self.group = cgroups.own_memory_group(self.hierarchy) if self.hierarchy else None
        self.before = self.kills()

    def kills(self) -> int | None:
        return cgroups.oom_kills_in(self.hierarchy, self.group) if self.group else None

    def explain(self, pid: int | None) -> str | None:
        """The line for the server's log, or None when the OOM killer had no part in it."""
        now = self.kills()
        if self.before is None or now is None or now <= self.before:
            return None
        limit = cgroups.memory_limit_in(self.hierarchy, self.group)
        within = f"{cgroups.describe_bytes(limit)} of memory" if limit else "their memory limit"
        return (
            f"Kernel {pid} was killed by the out-of-memory killer: this server and its kernels may use "
            f"{within} together. Use less memory at once (smaller data or batches), or ask for a "
            "larger profile."
        )


class ForkProvisioner(LocalProvisioner):
    """LocalProvisioner that asks the fork server first."""

    _oom: OomWatch | None = None

    async def poll(self) -> int | None:
        status = await super().poll()
        if status is not None and self._oom is not None:
            reason, self._oom = self._oom.explain(self.pid), None  # said once per kernel
            if reason:
                self.log.error(reason)
        return status

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        try:
            self._oom = OomWatch()
        except OSError:
            self._oom = None
        return await self._launch(cmd, **kwargs)

    async def _launch(self, cmd: list[str], **kwargs: Any) -> KernelConnectionInfo:
        socket_path = os.environ.get(SOCKET_ENV)
        if socket_path and forkable(cmd):
            env = dict(kwargs.get("env") or os.environ)
            cwd = str(kwargs.get("cwd") or os.getcwd())
            try:
                self.process = await fork_kernel(socket_path, cmd, env, cwd)
            except ForkRefused as exc:
                self.log.info("Starting the kernel as a new process: %s", exc)
            else:
                self.pid = self.pgid = self.process.pid  # the kernel leads its own session
                self.cwd = kwargs.get("cwd", pathlib.Path.cwd())
                self.log.info("Kernel forked by the fork server (pid %s)", self.pid)
                return self.connection_info
        return await super().launch_kernel(cmd, **kwargs)
