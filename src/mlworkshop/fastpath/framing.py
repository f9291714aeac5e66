"""Bytes on the fast path's sockets: one JSON object per line, and no other code reads or writes them.

Both sockets (the hub's to the fork server, a user server's to its kernel half) carry short
messages: a request one way, a reply (and, for a kernel, its exit code) the other. A line of JSON
is the simplest framing that a reader can find the end of without knowing the length first, and
json.dumps never writes a raw newline (it escapes those inside strings).

What a reader accepts is bounded: at most MAX_FRAME bytes before the newline (an environment and
an argv, never more), one JSON *object*, valid UTF-8. Anything else is a FrameError (a
ValueError), so a garbled or oversized message is one clear line in a log, never a traceback or
a process that keeps reading for ever.

Stdlib only: the fork server imports this before it forks (mlworkshop.fastpath says why).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time

MAX_FRAME = 16 << 20  # bytes before the newline
MAX_FDS = 4  # descriptors one message may carry (a kernel request: the server's stdout and stderr)


class FrameError(ValueError):
    """A message that is not one JSON object on one line within MAX_FRAME bytes."""


def encode(message: dict) -> bytes:
    """One message as its line (newline included)."""
    if not isinstance(message, dict):
        raise FrameError(f"a message is a JSON object, not {type(message).__name__}")
    line = json.dumps(message).encode() + b"\n"
    if len(line) > MAX_FRAME:
        raise FrameError(f"message larger than {MAX_FRAME} bytes")
    return line


def decode(line: bytes) -> dict:
    """One line (with or without its newline) as the message it carries."""
    if len(line) > MAX_FRAME + 1:
        raise FrameError(f"message larger than {MAX_FRAME} bytes")
    try:
        message = json.loads(line.removesuffix(b"\n").decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FrameError(f"garbled message: {exc}") from None
    if not isinstance(message, dict):
        raise FrameError(f"a message is a JSON object, not {type(message).__name__}")
    return message


class LineBuffer:
    """Bytes as they arrive, whole lines out: for a reader that must not block (ForkedKernel)
    or that may receive more than the one line it waits for."""

    def __init__(self, data: bytes = b"", max_bytes: int | None = None):
        self.max_bytes = MAX_FRAME if max_bytes is None else max_bytes
        self.data = b""
        self.feed(data)

    def feed(self, chunk: bytes) -> None:
        self.data += chunk
        if b"\n" not in self.data and len(self.data) > self.max_bytes:
            raise FrameError(f"message larger than {self.max_bytes} bytes")

    def pop(self) -> bytes | None:
        """The next whole line (without its newline), or None until one has arrived."""
        line, sep, rest = self.data.partition(b"\n")
        if not sep:
            return None
        self.data = rest
        if len(line) > self.max_bytes:
            raise FrameError(f"message larger than {self.max_bytes} bytes")
        return line


def send(conn: socket.socket, message: dict) -> None:
    conn.sendall(encode(message))


def recv(
    conn: socket.socket, timeout: float | None, max_fds: int = 0, max_bytes: int | None = None
) -> tuple[dict, list[int]]:
    """The one message a peer sends on a blocking socket, with up to `max_fds` descriptors
    passed beside it, within `timeout` seconds for all of it (a peer trickling a byte at a time
    is dropped too; None: wait for ever). TimeoutError, or FrameError for a connection closed
    early, a message too large or garbled, or anything after it (one request per connection).
    The descriptors received are closed again on any error."""
    limit = MAX_FRAME if max_bytes is None else max_bytes
    data, fds = b"", []
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while b"\n" not in data:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no whole request within {timeout:g} s")
                conn.settimeout(left)
            try:
                if max_fds:
                    chunk, new_fds, _, _ = socket.recv_fds(conn, 1 << 20, max_fds)
                    fds.extend(new_fds)
                else:
                    chunk = conn.recv(1 << 20)
            except TimeoutError:  # socket.timeout
                raise TimeoutError(f"no whole request within {timeout:g} s") from None
            if not chunk:
                raise FrameError("connection closed before a whole request arrived")
            data += chunk
            if len(data.partition(b"\n")[0]) > limit:
                raise FrameError(f"request larger than {limit} bytes")
        line, _, rest = data.partition(b"\n")
        if rest:
            raise FrameError("more than one message where one request was expected")
        return decode(line), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    finally:
        if deadline is not None:
            conn.settimeout(None)


async def recv_async(sock: socket.socket, timeout: float) -> tuple[dict | None, LineBuffer]:
    """On a non-blocking socket in the running loop: the first message, or None when the peer
    closed before sending one; and the buffer holding whatever came after it (a kernel's exit
    report may follow its pid). TimeoutError after `timeout` seconds; FrameError if garbled."""
    loop = asyncio.get_running_loop()
    buffer = LineBuffer()
    async with asyncio.timeout(timeout):
        while (line := buffer.pop()) is None:
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                return None, buffer
            buffer.feed(chunk)
    return decode(line), buffer
