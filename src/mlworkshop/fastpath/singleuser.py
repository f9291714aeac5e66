"""The single-user server mlworkshop starts: jupyterhub-singleuser with TCP_NODELAY on websockets.

jupyter-server never sets TCP_NODELAY, so Nagle's algorithm holds each small kernel message back
for the peer's delayed ACK: a `1+1` round trip through the proxy takes ~48 ms instead of ~7 ms.
"""

from __future__ import annotations


def enable_websocket_nodelay() -> None:
    from jupyter_server.base.websocket import WebSocketMixin

    if getattr(WebSocketMixin.open, "_mlw_nodelay", False):
        return
    original_open = WebSocketMixin.open

    def open_with_nodelay(self, *args, **kwargs):
        self.set_nodelay(True)
        return original_open(self, *args, **kwargs)

    open_with_nodelay._mlw_nodelay = True
    WebSocketMixin.open = open_with_nodelay


def main() -> None:
    enable_websocket_nodelay()
    from jupyterhub.singleuser import main as singleuser_main

    singleuser_main()


if __name__ == "__main__":
    main()
