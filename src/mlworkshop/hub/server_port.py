"""A port for a student's server on this machine, and whether what listens on it is that server.

The hub asks the kernel for a free port (bind to port 0, then close), tells the new server to
listen there, and routes the student to it once something accepts connections on it. The server
binds the port only a moment later (forked, privileges dropped, jupyter-server initialised:
~0.3 s, more while a class rushes in). Two things can take the port in between:

- another server this hub is starting: the kernel may hand out the same free port twice while
  the first server has not bound it yet. Seen once in bench/rush.py (one student of a
  30-student rush; tests/attacks/test_attack_server_port.py makes it happen every time): the
  second server could not bind and exited, the hub found the first server listening there and
  routed the second student to it; that student's JupyterLab answered 404 (a path outside the
  other server's base URL). `pick()` never hands out a port another start still holds, until
  `release()`.
- anyone else's process: a student who keeps binding ports may catch the one meant for another
  student's server, and the hub would route that student to them: their JupyterLab served by
  the attacker, everything they type and upload read. So a listener is believed only once the
  kernel says its socket belongs to the server's own account (`listener_uid`: the owner of the
  other end of the hub's test connection, hub/peer.py; an accepted socket keeps the owner of
  the socket that listened).

Containers on the host's network (spawner.docker.network host, hub/docker_backend.py) share the
host's ports the same way: their port comes from `pick()` too, and a listener is believed only
when its owner is the uid the student's container runs as on the host (the effective uid of
the container's first process). That is why host networking needs each container to run as its
student's own account: with one uid for every container, the owner tells no one apart.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from jupyterhub.utils import random_port

from .peer import peer_uid

_starting: set[int] = set()  # handed to a server that may not have bound it yet


class PortTaken(Exception):
    """Something other than the server's own account listens on its port."""

    def __init__(self, port: int, owner: int):
        super().__init__(port, owner)
        self.port, self.owner = port, owner


def pick(free_port: Callable[[], int] = random_port, tries: int = 100) -> int:
    """A free port no other start of this hub holds; hold it until `release`."""
    for _ in range(tries):
        port = free_port()
        if port not in _starting:
            _starting.add(port)
            return port
    raise RuntimeError(f"no free port found in {tries} tries")


def release(port: int) -> None:
    """The server listens on `port` now (the kernel will not hand it out again), or never will."""
    _starting.discard(port)


def listener_uid(connection: socket.socket) -> int | None:
    """The account whose socket accepted `connection` (ours, connected to the server's port);
    None when the kernel cannot tell (the connection is gone already)."""
    return peer_uid(connection)
