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
"""

from __future__ import annotations

from collections.abc import Callable

import zmq
from ipykernel.kernelapp import IPKernelApp
from tornado.ioloop import IOLoop


class ForkedKernelApp(IPKernelApp):
    """IPKernelApp (its config, `c.IPKernelApp...`, applies unchanged) with a verbose XPUB."""

    def _bind_socket(self, s, port):
        if s.socket_type == zmq.XPUB:
            s.setsockopt(zmq.XPUB_VERBOSE, 1)  # before the IOPub thread owns the socket
        return super()._bind_socket(s, port)

    def when_listening(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the started kernel listens: at its event loop's first turn (after
        Kernel.start() registered the handlers) and, in the IOPub thread, after every message
        published before it (Kernel.start()'s "starting"). Call between initialize() and start()."""
        IOLoop.current().add_callback(self.iopub_thread.schedule, callback)
