"""The IPython kernel of a local server: ipykernel's own, without the visual debugger.

JupyterLab's debugger makes the kernel start debugpy, whose adapter listens on a 127.0.0.1 TCP
port and takes any client that connects: debugpy has no client authentication. While the
student's own JupyterLab is not attached (the moment between starting the debugger and attaching,
and for the rest of the kernel's life once they switch it off again), any local account can
connect, attach and `evaluate` code in the student's kernel, as the student (seen here: an
account of uid 65534 wrote a file as the kernel's user after the kernel's debugger was switched
on and off). The adapter can only listen on TCP, so on the local backend, where every student
shares the machine's loopback, the debugger is off: the kernel does not advertise it, refuses
debug requests, and never starts debugpy; the kernelspec the server shows says so too, so
JupyterLab shows no debugger switch (mlworkshop.kernel_sockets). `%debug`, `breakpoint()` and
pdb work as before: they need no socket. Containers and Kubernetes pods have a loopback of their
own and keep the debugger.

Kept light: a cold kernel imports this module as it starts (`IPKernelApp.kernel_class`); the
fork server preloads it.
"""

from __future__ import annotations

from ipykernel.ipkernel import IPythonKernel

KERNEL_CLASS = "mlworkshop.local_kernel.LocalKernel"
REFUSAL = (
    "The debugger is off on this hub: it would let other accounts on this machine run code in "
    "your kernel. Use %debug or breakpoint() instead."
)


class LocalKernel(IPythonKernel):
    """IPythonKernel that neither offers nor starts the debugger."""

    @property
    def kernel_info(self):
        info = dict(super().kernel_info)
        info["supported_features"] = [
            f for f in info.get("supported_features", []) if f != "debugger"
        ]
        info["debugger"] = False
        return info

    async def do_debug_request(self, msg):
        return {
            "type": "response",
            "request_seq": msg.get("seq"),
            "success": False,
            "command": msg.get("command"),
            "message": REFUSAL,
        }
