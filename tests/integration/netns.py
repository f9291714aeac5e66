"""A network namespace with nothing but loopback, for tests of an offline room, and a way in.

Everything started with `run()`/`popen()` sees only the namespace's own loopback: no route to
anything, so a download fails at once. The test itself stays outside and reaches one TCP port
inside through a relay over a Unix socket (Unix sockets live in the file system, not in a network
namespace): outside, 127.0.0.1:PORT -> SOCK; inside, SOCK -> 127.0.0.1:PORT. The namespace still
has no way out.

`python -m tests.integration.netns relay LISTEN TARGET` is the relay (standard library only, so
it runs with any python3): LISTEN and TARGET are `tcp:HOST:PORT` or `unix:PATH`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class NetNS:
    def __init__(self) -> None:
        self.name = f"mlw-offline-{secrets.token_hex(3)}"
        self.relays: list[subprocess.Popen] = []
        self.dir = Path(tempfile.mkdtemp(prefix="mlw-netns-"))

    def __enter__(self) -> NetNS:
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(
            ["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"], check=True
        )
        return self

    def __exit__(self, *exc) -> None:
        for relay in self.relays:
            relay.kill()
            relay.wait()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        for sock in self.dir.glob("*"):
            sock.unlink()
        self.dir.rmdir()

    def command(self, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(self, cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(self.command(cmd), **kwargs)

    def popen(self, cmd: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.command(cmd), **kwargs)

    def links(self) -> list[str]:
        out = self.run(["ip", "-o", "link"], check=True).stdout
        return [line.split(":")[1].strip() for line in out.splitlines()]

    def expose(self, port: int) -> None:
        """127.0.0.1:port outside reaches 127.0.0.1:port inside."""
        sock = self.dir / f"{port}.sock"
        relay = [sys.executable, "-m", "tests.integration.netns", "relay"]
        repo = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": repo}
        inside = self.popen([*relay, f"unix:{sock}", f"tcp:127.0.0.1:{port}"], env=env, cwd=repo)
        self.relays.append(inside)
        deadline = time.monotonic() + 30
        while not sock.exists():
            if inside.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the relay into {self.name} did not start")
            time.sleep(0.05)
        outside = subprocess.Popen(
            [*relay, f"tcp:127.0.0.1:{port}", f"unix:{sock}"], env=env, cwd=repo
        )
        self.relays.append(outside)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _open(spec: str):
    kind, _, where = spec.partition(":")
    if kind == "unix":
        return await asyncio.open_unix_connection(where)
    host, _, port = where.rpartition(":")
    return await asyncio.open_connection(host, int(port))


async def relay(listen: str, target: str) -> None:
    async def handle(reader, writer):
        try:
            up_reader, up_writer = await _open(target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    kind, _, where = listen.partition(":")
    if kind == "unix":
        server = await asyncio.start_unix_server(handle, where)
        os.chmod(where, 0o600)
    else:
        host, _, port = where.rpartition(":")
        server = await asyncio.start_server(handle, host, int(port))
    async with server:
        await server.serve_forever()


if __name__ == "__main__" and sys.argv[1:2] == ["relay"]:
    asyncio.run(relay(sys.argv[2], sys.argv[3]))
