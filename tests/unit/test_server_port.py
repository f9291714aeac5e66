"""hub/server_port.py: no port handed to two starts at once, and the owner of a listener."""

from __future__ import annotations

import os
import socket

import pytest

from mlworkshop.hub import server_port


@pytest.fixture(autouse=True)
def no_starts_held():
    server_port._starting.clear()
    yield
    server_port._starting.clear()


def test_a_port_held_by_a_start_is_not_handed_out_again_until_released():
    answers = iter([5000, 5000, 5001, 5000])
    first = server_port.pick(lambda: next(answers))
    second = server_port.pick(lambda: next(answers))  # the kernel said 5000 again: skipped
    assert (first, second) == (5000, 5001)
    server_port.release(5000)
    assert server_port.pick(lambda: next(answers)) == 5000


def test_no_free_port_is_an_error_not_a_loop():
    server_port.pick(lambda: 5000)
    with pytest.raises(RuntimeError, match="no free port"):
        server_port.pick(lambda: 5000, tries=3)


def test_the_owner_of_a_listener_is_who_listens():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()) as ours:
            assert server_port.listener_uid(ours) == os.geteuid()
