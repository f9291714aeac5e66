"""Which local account opened a TCP connection to us: the uid of the peer's socket, asked of the
kernel for that one socket (sock_diag over netlink, as `ss` does), else read from /proc/net/tcp
and /proc/net/tcp6.

Why: on a root hub every local account can reach the hub's loopback port and send any header it
likes, so X-Forwarded-For proves nothing by itself. The proxy runs as an account of its own; a
connection whose other end is a socket owned by that account came through the proxy, and then
(and only then) the address the proxy appended is the client's.

The kernel lists every TCP socket with its owner: the client's end of our connection is the one
whose local address is our peer's and whose remote address is ours. Anything not found, or found
more than once with different owners, is None: the caller treats it as "not the proxy".

The tables cost the kernel and us time in proportion to every TCP socket on the machine, for
each login: py-spy in a 60-student rush found 11 % of the hub's samples reading them, and a class
twice the size has twice the sockets and twice the logins. sock_diag's exact lookup (a request
naming the socket's four addresses, answered by the kernel's own hash lookup) costs the same
however many sockets there are; the tables are the fallback where it gives no answer (a kernel
without the inet_diag module). Only the kernel can answer on a sock_diag socket: sending
to another process's netlink socket needs CAP_NET_ADMIN for this family, and answers from any
sender but the kernel, or for another socket, are ignored.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import socket
import struct
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


def _forms(ip: str) -> dict[int, ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The address as the kernel keeps it in each family's sockets, without a zone (%eth0): an
    IPv4 address (or an IPv4-mapped one) as IPv4, and as IPv4-mapped IPv6 for a dual-stack
    socket; an IPv6 address only as itself."""
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if isinstance(address, ipaddress.IPv4Address):
        return {
            socket.AF_INET: address,
            socket.AF_INET6: ipaddress.IPv6Address(f"::ffff:{address}"),
        }
    return {socket.AF_INET6: address}


def _spellings(ip: str, port: int) -> set[str]:
    """Every way a table may show this endpoint: IPv4 in tcp, and in tcp6 both IPv6 and the
    IPv4-mapped form (a dual-stack client socket connected to an IPv4 address)."""
    return {_hex_address(str(address), port, family) for family, address in _forms(ip).items()}


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


NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY = 4, 20  # linux/netlink.h, linux/sock_diag.h
NLM_F_REQUEST, NLMSG_ERROR = 0x1, 0x2
NO_COOKIE = 0xFFFFFFFF  # INET_DIAG_NOCOOKIE: look the socket up by its addresses alone
ALL_STATES = 0xFFFFFFFF
_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_SOCKID = struct.Struct(">HH16s16s")  # ports and addresses in network order; then if, cookie
_DIAG_MSG = struct.Struct("=BBBB48sIIIII")  # family, state, timer, retrans, id, ..., uid, inode
_sequence = itertools.count(1)


def diag_owner(local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    """The uid of the TCP socket bound to `local` and connected to `remote`, from the kernel's
    exact lookup (sock_diag); None when the kernel knows no such socket or cannot be asked."""
    remote_forms = _forms(remote[0])
    for family, src in _forms(local[0]).items():
        dst = remote_forms.get(family)
        if dst is None:
            continue  # an IPv6 peer cannot be on an IPv4 socket
        sockid = _SOCKID.pack(
            local[1], remote[1], src.packed.ljust(16, b"\0"), dst.packed.ljust(16, b"\0")
        ) + struct.pack("=III", 0, NO_COOKIE, NO_COOKIE)
        uid = _ask_kernel(family, sockid)
        if uid is not None:
            return uid
    return None


def _ask_kernel(family: int, sockid: bytes) -> int | None:
    request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, ALL_STATES) + sockid
    sequence = next(_sequence) & 0xFFFFFFFF
    header = _NLMSGHDR.pack(
        _NLMSGHDR.size + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, sequence, 0
    )
    try:
        with socket.socket(
            socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG
        ) as nl:
            nl.settimeout(1.0)
            nl.sendto(header + request, (0, 0))
            for _ in range(4):  # the answer is the first message from the kernel for our sequence
                data, (sender, _groups) = nl.recvfrom(8192)
                if sender != 0 or len(data) < _NLMSGHDR.size:
                    continue
                _length, kind, _flags, seq, _port = _NLMSGHDR.unpack_from(data)
                if seq != sequence:
                    continue
                if kind == NLMSG_ERROR or len(data) < _NLMSGHDR.size + _DIAG_MSG.size:
                    return None  # ENOENT: no such socket (or no inet_diag here)
                fields = _DIAG_MSG.unpack_from(data, _NLMSGHDR.size)
                answered_for, uid = fields[4], fields[8]
                if answered_for[:36] != sockid[:36]:  # ports and addresses must be the ones asked
                    return None
                return uid
    except OSError:  # no netlink here (or a timeout): the tables answer instead
        return None
    return None


def peer_uid(conn: socket.socket, tables: Iterable[Path] = TABLES) -> int | None:
    """The uid of the account whose socket is the other end of `conn`, an accepted TCP
    connection from this machine; None when it cannot be told (not local, already gone)."""
    try:
        peer, ours = conn.getpeername(), conn.getsockname()
    except OSError:
        return None
    if conn.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    uid = diag_owner(peer, ours)
    if uid is not None:
        return uid
    for _ in range(2):  # once more if not found: a read may have skipped it (see _read)
        uid = socket_owner(peer, ours, tables)
        if uid is not None:
            return uid
    return None
