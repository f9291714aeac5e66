"""Kernel sockets only their own student can reach: ZeroMQ over Unix sockets in a private folder.

jupyter_client starts every kernel on five 127.0.0.1 TCP ports, and on a shared machine every
local account can connect to them. Sending a request needs the session's HMAC key (in the 0600
connection file), but IOPub is a publisher and subscribing needs no key: any student could read
every other student's cell outputs as they appear (seen on this hub's local backend: an account
subscribed to another kernel's IOPub port and read what it printed). ipykernel's own warning
names the two ways out, Unix sockets or CurveZMQ; Unix sockets in a folder only the student can
enter are kept out by the kernel's file permissions, cost nothing per message (CurveZMQ encrypts
every one) and are a little faster than loopback TCP.

So a local-backend server (hub/server_config/jupyter_server_config.py) uses PrivateKernelManager:
its kernels' connection files and sockets live in a fresh 0700 folder of the student's, and every
kernel it starts uses the `ipc` transport. The debugger's socket is TCP only and takes anyone,
so this Python's IPython kernels start as mlworkshop.local_kernel.LocalKernel (no debugger), and
LocalKernelSpecManager tells JupyterLab so (no debugger switch).

The folder is in /tmp, not the student's runtime folder under their home: a Unix socket's path stops at 107 bytes, and a site's home folders can be deep
(<site>/users/<name>/.local/share/jupyter/runtime/kernel-<uuid>-ipc-1 is well past it).
mkdtemp makes it with a random name, exclusively and 0700, so no other account can have made it
first, look inside, or replace it (/tmp is sticky). Forked and cold kernels both follow the
connection file; containers and Kubernetes pods have a network namespace of their own and keep
jupyter_client's defaults.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

from .fastpath.provisioner import reported_listening
from .local_kernel import KERNEL_CLASS

SOCKET_PATH_MAX = 107  # bytes of sun_path a Unix socket's path may use (108 with its NUL)
FOLDER_PREFIX = "mlw-kernels-"


_folders: list[str] = []  # made by this process, removed as it ends


def private_connection_dir(base: str = "/tmp") -> str:
    """A new folder only this process's user can enter, removed when the process ends (atexit;
    a forked server leaves with os._exit, so fastpath.server calls remove_private_folders)."""
    if not os.path.isdir(base):
        base = tempfile.gettempdir()
    folder = tempfile.mkdtemp(prefix=FOLDER_PREFIX, dir=base)  # 0700, created exclusively
    if not _folders:
        atexit.register(remove_private_folders)
    _folders.append(folder)
    return folder


def remove_private_folders() -> None:
    """The folders this process made, with whatever its kernels left in them."""
    while _folders:
        shutil.rmtree(_folders.pop(), ignore_errors=True)


def ipc_prefix(connection_file: str) -> str:
    """Where jupyter_client puts a kernel's Unix sockets (`<prefix>-<n>`, n from 1)."""
    return os.path.splitext(connection_file)[0] + "-ipc"


def runs_this_ipykernel(argv: list[str]) -> bool:
    """A kernelspec's command is this very Python's IPython kernel (jupyter_client runs `python`
    as sys.executable), which can import mlworkshop.local_kernel. Kernels of other environments
    are started as their kernelspec says."""
    major, minor = sys.version_info[:2]
    pythons = {"python", f"python{major}", f"python{major}.{minor}"}
    return (
        len(argv) >= 3
        and (argv[0] in pythons or argv[0] == sys.executable)
        and argv[1:3] == ["-m", "ipykernel_launcher"]
    )


class LocalKernelSpecManager(KernelSpecManager):
    """Kernelspecs as installed, but this Python's IPython kernel offers no debugger
    (JupyterLab shows its debugger switch from the kernelspec's metadata)."""

    def get_kernel_spec(self, kernel_name):
        spec = super().get_kernel_spec(kernel_name)
        if runs_this_ipykernel(spec.argv):
            spec.metadata = {**spec.metadata, "debugger": False}
        return spec


class PrivateKernelManager(AsyncMappingKernelManager):
    """jupyter_server's kernel manager with every kernel on Unix sockets in a private folder."""

    def __init__(self, **kwargs):
        kwargs["connection_dir"] = private_connection_dir()  # ServerApp passes its runtime_dir
        super().__init__(**kwargs)

    def pre_start_kernel(self, kernel_name, kwargs):
        km, kernel_name, kernel_id = super().pre_start_kernel(kernel_name, kwargs)
        if runs_this_ipykernel(km.kernel_spec.argv):  # kept for restarts (_launch_args)
            extra = [a for a in kwargs.get("extra_arguments") or [] if "kernel_class" not in a]
            kwargs["extra_arguments"] = [*extra, f"--IPKernelApp.kernel_class={KERNEL_CLASS}"]
        km.transport = "ipc"
        km.ip = ipc_prefix(km.connection_file)
        if len(os.fsencode(f"{km.ip}-99")) > SOCKET_PATH_MAX:  # only with no /tmp and a deep TMPDIR
            raise RuntimeError(
                f"The kernel's socket path {km.ip}-N is longer than a Unix socket allows "
                f"({SOCKET_PATH_MAX} bytes): give this machine a /tmp folder."
            )
        return km, kernel_name, kernel_id

    async def start_kernel(self, *args, **kwargs):
        """jupyter_server's, then a forked kernel that reported it listens counts as idle. The
        activity monitor would keep "starting" until the kernel's first busy/idle, and the
        websocket's first nudge polls every 50 ms until it changes: the first cell of every
        kernel waited ~50 ms for nothing (fastpath/kernel_app.py). A kernel started any other
        way stays "starting" until it says otherwise, as before."""
        kernel_id = await super().start_kernel(*args, **kwargs)
        kernel = self.get_kernel(kernel_id)
        if reported_listening(kernel) and kernel.execution_state == "starting":
            kernel.execution_state = "idle"
        return kernel_id
