"""Which local account opened a TCP connection to us: the uid of the peer's socket, read from
/proc/net/tcp and /proc/net/tcp6.

Why: on a root hub every local account can reach the hub's loopback port and send any header it
likes, so X-Forwarded-For proves nothing by itself. The proxy runs as an account of its own; a
connection whose other end is a socket owned by that account came through the proxy, and then
(and only then) the address the proxy appended is the client's.

The kernel lists every TCP socket with its owner: the client's end of our connection is the one
whose local address is our peer's and whose remote address is ours. Anything not found, or found
more than once with different owners, is None: the caller treats it as "not the proxy".
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from collections.abc import Iterable
from pathlib import Path

TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def _hex_address(ip: str, port: int, family: int) -> str:
    """An address as /proc/net/tcp* prints it: the address as 32-bit words in this machine's byte
    order, each as 8 hex digits, then ':' and the port as 4 hex digits."""
    packed = socket.inet_pton(family, ip)
    words = (int.from_bytes(packed[i : i + 4], sys.byteorder) for i in range(0, len(packed), 4))
    return "".join(f"{word:08X}" for word in words) + f":{port:04X}"


def _spellings(ip: str, port: int) -> set[str]:
    """Every way a table may show this endpoint: IPv4 in tcp, and in tcp6 both IPv6 and the
    IPv4-mapped form (a dual-stack client socket connected to an IPv4 address)."""
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if isinstance(address, ipaddress.IPv4Address):
        return {
            _hex_address(str(address), port, socket.AF_INET),
            _hex_address(f"::ffff:{address}", port, socket.AF_INET6),
        }
    return {_hex_address(str(address), port, socket.AF_INET6)}


def _read(table: Path) -> str:
    """The whole table in as few reads as possible: the kernel builds it afresh for each read, and
    a socket that comes or goes between two reads can make the next one skip an entry."""
    chunks = []
    fd = os.open(table, os.O_RDONLY)
    try:
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("ascii", "replace")


def _rows(tables: Iterable[Path]) -> Iterable[list[str]]:
    for table in tables:
        try:
            lines = _read(table).splitlines()[1:]  # after the header
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) >= 8:
                yield fields


def socket_owner(
    local: tuple[str, int], remote: tuple[str, int], tables: Iterable[Path] = TABLES
) -> int | None:
    """The uid of the socket bound to `local` and connected to `remote` (both (ip, port)), or None
    when there is none, or several with different owners."""
    wanted_local, wanted_remote = _spellings(*local[:2]), _spellings(*remote[:2])
    owners = {
        int(fields[7])
        for fields in _rows(tables)
        if fields[1] in wanted_local and fields[2] in wanted_remote
    }
    return owners.pop() if len(owners) == 1 else None


def peer_uid(conn: socket.socket, tables: Iterable[Path] = TABLES) -> int | None:
    """The uid of the account whose socket is the other end of `conn`, an accepted TCP
    connection from this machine; None when it cannot be told (not local, already gone)."""
    try:
        peer, ours = conn.getpeername(), conn.getsockname()
    except OSError:
        return None
    if conn.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    for _ in range(2):  # once more if not found: a read may have skipped it (see _read)
        uid = socket_owner(peer, ours, tables)
        if uid is not None:
            return uid
    return None
