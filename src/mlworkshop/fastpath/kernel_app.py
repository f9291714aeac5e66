"""The IPython kernel application a forked kernel runs: ipykernel's own, whose IOPub socket
greets every subscriber, not only the first; the fork server's child reports it ready once it
is initialised (fastpath/kernels.py), and the server's provisioner waits for that.

A client that has just connected to a kernel must know that its IOPub subscription has reached
the kernel before it sends a request, or the kernel's outputs are published before anyone
listens and are lost. jupyter_server's websocket finds out by "nudging": it sends kernel_info
requests until the reply and an IOPub message have come back *and* its activity monitor has seen
the kernel leave "starting", and waits 0.5 s between tries. Measured with bench/rush.py's
client, the first `1+1` of every forked kernel took ~530 ms (the next ones 7-10 ms), for two
reasons:

- A forked kernel is "started" ~0.1 s before it has bound its sockets. The server connected its
  activity monitor at once; ZeroMQ tries again only 100 ms after a refused connect, and the
  status messages of the first nudge went out before the monitor listened. Hence the provisioner
  now waits for the ready report, sent once every socket is bound.
- ipykernel 7 answers a new subscription with an `iopub_welcome` message (JEP 65, XPUB), which
  ends a nudge at once, but an XPUB socket reports only subscriptions to topics nobody has
  subscribed to yet: the activity monitor's came first, so a browser's never got a welcome.
  XPUB_VERBOSE makes the socket report every subscription (what JEP 65 and ZeroMQ's
  last-value-cache pattern call for).

One wait was left: the nudge also polls, every 50 ms, until the server's activity monitor has
seen the kernel leave "starting", and the monitor keeps "starting" until the kernel's first
busy/idle. Measured through the hub, the first `1+1` of a fresh kernel took ~36 ms, the next ones
~7; the kernel began the first cell 54 ms after it was sent, all of it that poll. So the report
now means more: it is sent from the kernel's event loop at its first turn (every handler
registered), through the IOPub thread after the kernel's own "starting" status (gone, unheard:
nobody subscribes before the report), and the server's kernel manager
(mlworkshop.kernel_sockets.PrivateKernelManager) counts a kernel that reported so as idle.

Every IPythonKernel also lists the files of all the modules it has loaded, for its debugger
(which steps over the kernel's own code): a walk over sys.modules that reads each module's
`__file__`. In a forked kernel those are the fork server's ~1,900 modules, and reading each one
writes its reference count, so the walk alone copied ~13 MiB of the fork server's pages into a
forked child and took 15-19 ms (/proc/self/smaps_rollup around it). The fork server now lists
them once (`list_modules_once`), the file names packed together, and while a forked kernel is
made, ipykernel.ipkernel reads that list plus the modules imported since the fork. Measured
through the hub (bench/rush.py, a forked kernel's USS after its first cell): 29.1 -> 23.3 MiB.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import ipykernel.ipkernel
import zmq
from ipykernel.kernelapp import IPKernelApp
from tornado.ioloop import IOLoop


class _Listed:
    """A module as IPythonKernel's list reads it: only its file."""

    __slots__ = ("__file__",)

    def __init__(self, file: str) -> None:
        self.__file__ = file


_LISTED: tuple[_Listed, ...] | None = None  # the fork server's modules, made before any fork
_LISTED_COUNT = 0  # how many entries sys.modules had then


def list_modules_once() -> None:
    """In the fork server, after everything is preloaded: the modules every kernel would list,
    their file names copied next to each other (the originals lie all over the heap)."""
    global _LISTED, _LISTED_COUNT
    files = [m.__file__ for m in sys.modules.copy().values() if getattr(m, "__file__", None)]
    _LISTED = tuple(_Listed((file + "/")[:-1]) for file in files)  # (+ "/")[:-1]: a new str
    _LISTED_COUNT = len(sys.modules)


class _ListedModules:
    """Stands for sys.modules where IPythonKernel.__init__ lists it (`sys.modules.copy().values()`)."""

    def copy(self) -> dict[int, object]:
        since_fork = max(0, len(sys.modules) - _LISTED_COUNT)  # added at the end: dicts keep order
        newer = itertools.islice(reversed(sys.modules.values()), since_fork)
        return dict(enumerate(itertools.chain(_LISTED or (), newer)))


class _SysListingModules:
    """ipykernel.ipkernel's `sys` while a kernel is made: sys itself, but for `modules`."""

    modules = _ListedModules()

    def __getattr__(self, name: str):
        return getattr(sys, name)


@contextmanager
def _modules_listed_by_fork_server() -> Iterator[None]:
    if _LISTED is None or ipykernel.ipkernel.sys is not sys:  # not forked, or not ours to swap
        yield
        return
    ipykernel.ipkernel.sys = _SysListingModules()  # type: ignore[assignment]
    try:
        yield
    finally:
        ipykernel.ipkernel.sys = sys


class ForkedKernelApp(IPKernelApp):
    """IPKernelApp (its config, `c.IPKernelApp...`, applies unchanged) with a verbose XPUB, and
    the kernel's module list (any IPythonKernel subclass) taken from the fork server's."""

    def init_kernel(self):
        with _modules_listed_by_fork_server():
            super().init_kernel()

    def _bind_socket(self, s, port):
        if s.socket_type == zmq.XPUB:
            s.setsockopt(zmq.XPUB_VERBOSE, 1)  # before the IOPub thread owns the socket
        return super()._bind_socket(s, port)

    def when_listening(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the started kernel listens: at its event loop's first turn (after
        Kernel.start() registered the handlers) and, in the IOPub thread, after every message
        published before it (Kernel.start()'s "starting"). Call between initialize() and start()."""
        IOLoop.current().add_callback(self.iopub_thread.schedule, callback)
