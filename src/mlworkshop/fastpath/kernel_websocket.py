"""The websocket connection of a local server's kernels: jupyter_server's, with a shorter nudge
for forked kernels.

Before a new websocket passes anything on, jupyter_server "nudges" the kernel: it opens two more
ZeroMQ connections (shell and control) and sends kernel_info requests on them until a reply and
an IOPub message have come back, so that the client's IOPub subscription is known to be live
(outputs published before it would be lost). A client's first message waits behind this: with
the kernel_info request jupyter_server makes before the handshake, most of the ~30 ms a fresh
kernel's first `1+1` still took through the hub (bench/rush.py, one student).

A forked kernel greets every new IOPub subscriber (fastpath/kernel_app.py: XPUB_VERBOSE), so the
first message on the websocket's own IOPub channel proves that its subscription is live, which
is all the round trips were for: shell and control are DEALER sockets, which keep a message
until their connection is up. Such a kernel gets that wait instead, when the connection's IOPub
channel is new (a client that reconnects to its buffered session keeps its old channels, whose
subscription is greeted no more); any other kernel (started cold, of another environment, or a
forked one that has not said it listens) gets the full nudge, and so does a forked kernel that
sends nothing on IOPub within WELCOME_TIMEOUT.
"""

from __future__ import annotations

import asyncio

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection

from .provisioner import reported_listening

WELCOME_TIMEOUT = 2.0  # seconds: then jupyter_server's own nudge, as for any kernel


class ForkedKernelConnection(ZMQChannelsWebsocketConnection):
    """ZMQChannelsWebsocketConnection whose nudge, for a kernel that greets subscribers, waits
    for the greeting on its own IOPub channel."""

    _fresh_iopub = False  # create_stream() has just subscribed: the kernel will greet it

    def create_stream(self):
        super().create_stream()
        self._fresh_iopub = True

    def nudge(self):
        fresh, self._fresh_iopub = self._fresh_iopub, False
        if not (fresh and reported_listening(self.kernel_manager)):
            return super().nudge()
        iopub = self.channels["iopub"]
        greeted: asyncio.Future[None] = asyncio.Future()

        def on_iopub(_msg) -> None:
            if not greeted.done():
                iopub.stop_on_recv()
                greeted.set_result(None)

        iopub.on_recv(on_iopub)

        async def wait_for_greeting() -> None:
            try:
                await asyncio.wait_for(greeted, WELCOME_TIMEOUT)
            except TimeoutError:
                if not iopub.closed():
                    iopub.stop_on_recv()
                self.log.warning(
                    "Kernel %s sent no IOPub greeting in %s s: nudging it",
                    self.kernel_id,
                    WELCOME_TIMEOUT,
                )
                await super(ForkedKernelConnection, self).nudge()

        return asyncio.ensure_future(wait_for_greeting())
