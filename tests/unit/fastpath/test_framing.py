"""fastpath.framing, the only code that reads or writes the fast path's sockets: one JSON object
per line, round-tripped; garbled, oversized, truncated or extra messages refused with a
FrameError (a ValueError), never a traceback from json or a reader that waits for ever."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from mlworkshop.fastpath import framing
from mlworkshop.fastpath.framing import FrameError, LineBuffer


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    yield ours, theirs
    ours.close()
    theirs.close()


MESSAGES = [
    {"pid": 4242},
    {
        "argv": ["python", "-m", "x"],
        "env": {"A": "line one\nline two", "B": "é ✓ \u2028"},
        "cwd": "/home/a b",
    },
    {},
    {"nested": {"list": [1, 2.5, None, True]}},
]


@pytest.mark.parametrize("message", MESSAGES)
def test_encode_decode_round_trip_on_one_line(message):
    line = framing.encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # newlines inside strings are escaped
    assert framing.decode(line) == message
    assert framing.decode(line[:-1]) == message


@pytest.mark.parametrize("message", MESSAGES)
def test_send_recv_round_trip_over_a_socket(pair, message):
    ours, theirs = pair
    framing.send(theirs, message)
    assert framing.recv(ours, timeout=30) == (message, [])


@pytest.mark.parametrize(
    "line, why",
    [
        (b"not json\n", "garbled message"),
        (b'{"pid": 1\n', "garbled message"),
        (b"\xff\xfe{}\n", "garbled message"),  # not UTF-8
        (b"[1, 2]\n", "JSON object, not list"),
        (b'"pid"\n', "JSON object, not str"),
        (b"42\n", "JSON object, not int"),
    ],
)
def test_decode_refuses_garbled_lines(line, why):
    with pytest.raises(FrameError, match=why):
        framing.decode(line)


def test_frame_errors_are_value_errors():
    assert issubclass(FrameError, ValueError)  # callers that caught json's ValueError still do


def test_encode_refuses_what_is_not_an_object_or_too_large(monkeypatch):
    with pytest.raises(FrameError, match="JSON object"):
        framing.encode(["pid", 1])
    monkeypatch.setattr(framing, "MAX_FRAME", 100)
    with pytest.raises(FrameError, match="larger than 100 bytes"):
        framing.encode({"env": {"X": "y" * 200}})
    with pytest.raises(FrameError, match="larger than 100 bytes"):
        framing.decode(b'{"x": "' + b"y" * 200 + b'"}\n')


def test_recv_refuses_an_oversized_message_without_waiting_for_its_end(pair, monkeypatch):
    ours, theirs = pair
    monkeypatch.setattr(framing, "MAX_FRAME", 1000)
    theirs.sendall(b'{"x": "' + b"y" * 2000)  # no newline: a reader without a bound would wait
    with pytest.raises(FrameError, match="larger than 1000 bytes"):
        framing.recv(ours, timeout=30)


def test_recv_refuses_a_garbled_message(pair):
    ours, theirs = pair
    theirs.sendall(b"GET / HTTP/1.1\n")
    with pytest.raises(FrameError, match="garbled"):
        framing.recv(ours, timeout=30)


def test_recv_refuses_more_than_one_message(pair):
    ours, theirs = pair
    theirs.sendall(framing.encode({"a": 1}) + framing.encode({"b": 2}))
    with pytest.raises(FrameError, match="more than one message"):
        framing.recv(ours, timeout=30)


def test_recv_closed_early_and_idle_peers(pair):
    ours, theirs = pair
    theirs.sendall(b'{"pid"')
    with pytest.raises(TimeoutError, match="no whole request within 0.2 s"):
        framing.recv(ours, timeout=0.2)
    assert ours.gettimeout() is None
    theirs.close()
    with pytest.raises(FrameError, match="closed before a whole request"):
        framing.recv(ours, timeout=30)


def test_recv_with_descriptors_in_pieces(pair):
    ours, theirs = pair
    r, w = os.pipe()
    socket.send_fds(theirs, [b'{"argv": ["x"], '], [r, w])
    theirs.sendall(b'"cwd": "/"}\n')
    message, fds = framing.recv(ours, timeout=30, max_fds=framing.MAX_FDS)
    assert message == {"argv": ["x"], "cwd": "/"} and len(fds) == 2
    os.write(fds[1], b"through the passed fd")
    assert os.read(r, 100) == b"through the passed fd"
    for fd in (r, w, *fds):
        os.close(fd)


def test_line_buffer_splits_lines_and_bounds_a_line_without_end():
    buffer = LineBuffer(b'{"pid": 1}\n{"ex')
    assert buffer.pop() == b'{"pid": 1}' and buffer.pop() is None
    buffer.feed(b'it": 0}\n')
    assert framing.decode(buffer.pop()) == {"exit": 0} and buffer.pop() is None
    small = LineBuffer(max_bytes=10)
    with pytest.raises(FrameError, match="larger than 10 bytes"):
        small.feed(b"x" * 11)


async def test_recv_async_returns_the_reply_and_what_followed_it(pair):
    ours, theirs = pair
    ours.setblocking(False)
    theirs.sendall(framing.encode({"pid": 7}) + b'{"exit"')
    reply, rest = await framing.recv_async(ours, 30)
    assert reply == {"pid": 7} and rest.data == b'{"exit"'
    theirs.close()
    assert (await framing.recv_async(ours, 30))[0] is None  # closed before any message


async def test_recv_async_times_out_and_refuses_garbled(pair):
    ours, theirs = pair
    ours.setblocking(False)
    with pytest.raises((TimeoutError, asyncio.TimeoutError)):
        await framing.recv_async(ours, 0.2)
    theirs.sendall(b"<html>\n")
    with pytest.raises(FrameError, match="garbled"):
        await framing.recv_async(ours, 30)
