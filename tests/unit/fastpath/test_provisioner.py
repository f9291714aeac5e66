"""fastpath.provisioner, the user server's side of a forked kernel: which kernels it asks the
fork server for (forkable) and the Popen look-alike it holds for one (ForkedKernel).

No fork server here (tests/integration/test_kernel_fork.py has that); the only processes are
short-lived `sleep`s standing in for a forked kernel.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time

import pytest

from mlworkshop.fastpath.kernels import needs_fresh_process
from mlworkshop.fastpath.provisioner import ForkedKernel, forkable

KERNEL_ARGV = [sys.executable, "-m", "ipykernel_launcher", "-f", "/run/user/kernel-1.json"]


def test_forkable_is_the_standard_kernel_of_this_python():
    assert forkable(KERNEL_ARGV)
    assert forkable(KERNEL_ARGV[:3])
    assert not forkable(["/usr/bin/python3", *KERNEL_ARGV[1:]])
    assert not forkable([sys.executable, "-m", "ipykernel", "-f", "k.json"])
    assert not forkable([sys.executable, "-m"])
    assert not forkable([])
    # forkable() is the client's early check: whatever it accepts, the fork server forks too
    assert not needs_fresh_process(KERNEL_ARGV, {}, {})


# --- ForkedKernel: a Popen look-alike fed by the connection to the kernel -------------------


@pytest.fixture
def stand_in():
    """A live process (the 'kernel') and both ends of its connection; the server's end is
    non-blocking, as fork_kernel leaves it."""
    proc = subprocess.Popen(["sleep", "60"])
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ours.setblocking(False)
    try:
        yield proc, ForkedKernel(proc.pid, ours), theirs
    finally:
        theirs.close()
        ours.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_forked_kernel_running_while_connection_open_and_pid_exists(stand_in):
    proc, kernel, theirs = stand_in
    assert kernel.poll() is None and kernel.returncode is None
    assert kernel.poll() is None  # polling again does not change it
    with pytest.raises(TimeoutError):
        kernel.wait(timeout=0.2)
    assert kernel.stdin is None and kernel.stdout is None and kernel.stderr is None


def test_forked_kernel_exit_code_reported_then_connection_closed(stand_in):
    proc, kernel, theirs = stand_in
    theirs.sendall(b'{"exit": 3}\n')
    assert kernel.poll() is None, "a report alone is not the end: the connection is still open"
    theirs.close()
    assert kernel.poll() == 3 and kernel.returncode == 3
    assert kernel.wait(timeout=1) == 3
    # once it has an exit code it never signals that pid again (it may belong to someone else now)
    kernel.send_signal(signal.SIGKILL)
    kernel.kill()
    kernel.terminate()
    assert proc.poll() is None


def test_forked_kernel_exit_code_zero_in_pieces(stand_in):
    proc, kernel, theirs = stand_in
    theirs.sendall(b'{"ex')
    assert kernel.poll() is None
    theirs.sendall(b'it": 0}\n')
    theirs.close()
    assert kernel.poll() == 0


def test_forked_kernel_ignores_lines_that_are_not_reports(stand_in):
    proc, kernel, theirs = stand_in
    theirs.sendall(b'not json\n{"pid": 12}\n{"exit": 5}\n')
    theirs.close()
    assert kernel.poll() == 5


def test_forked_kernel_closed_without_a_report_is_1(stand_in):
    proc, kernel, theirs = stand_in
    theirs.close()
    assert kernel.poll() == 1
    assert kernel.wait() == 1


def test_forked_kernel_pid_gone_while_connection_open_is_1(stand_in):
    proc, kernel, theirs = stand_in
    proc.kill()
    proc.wait()  # reaped: the pid no longer exists
    assert kernel.poll() == 1


@pytest.mark.parametrize("how, code", [("kill", -signal.SIGKILL), ("terminate", -signal.SIGTERM)])
def test_forked_kernel_killed_through_the_handle_is_minus_signal(stand_in, how, code):
    proc, kernel, theirs = stand_in
    getattr(kernel, how)()
    assert proc.wait(timeout=5) == code  # the signal reached the real process
    assert kernel.poll() == code  # pid gone (the connection is still open)


def test_forked_kernel_killed_then_connection_closed_is_minus_signal(stand_in):
    proc, kernel, theirs = stand_in
    kernel.send_signal(signal.SIGKILL)
    theirs.close()  # the kernel's end goes with the kernel
    assert kernel.poll() == -signal.SIGKILL


def test_forked_kernel_interrupt_does_not_count_as_a_kill():
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(60)"
    python = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    try:
        assert python.stdout.readline() == b"ready\n"
        kernel = ForkedKernel(python.pid, ours)
        kernel.send_signal(signal.SIGINT)
        time.sleep(0.2)
        assert python.poll() is None and kernel.poll() is None
        theirs.close()
        assert kernel.poll() == 1  # not -SIGINT: an interrupt is not how it ended
    finally:
        theirs.close()
        python.kill()
        python.wait()


# --- until_ready: fork_kernel returns once the kernel's sockets are bound --------------------


def test_until_ready_returns_at_the_ready_report_and_leaves_what_follows_to_poll(stand_in):
    proc, kernel, theirs = stand_in
    theirs.sendall(b'{"ready": true}\n{"exit": 3}\n')
    assert not kernel.listening
    asyncio.run(kernel.until_ready(5))
    assert kernel.listening  # its server may count it idle (kernel_sockets.PrivateKernelManager)
    assert kernel.poll() is None  # the kernel's process still runs: not ended yet
    theirs.close()
    assert kernel.poll() == 3  # the exit report after the ready one was kept for poll()


def test_until_ready_returns_when_the_kernel_ends_before_it_is_ready(stand_in):
    proc, kernel, theirs = stand_in
    theirs.sendall(b'{"exit": 2}\n')
    theirs.close()
    asyncio.run(kernel.until_ready(5))
    assert kernel.poll() == 2 and not kernel.listening


def test_until_ready_gives_up_on_a_garbled_report_or_the_timeout(stand_in):
    proc, kernel, theirs = stand_in
    asyncio.run(kernel.until_ready(0.2))  # nothing sent: the kernel is used as it is
    assert kernel.poll() is None
    theirs.sendall(b"not json\n")
    asyncio.run(kernel.until_ready(5))
    assert kernel.poll() is None
    assert not kernel.listening, "a kernel that never said so stays 'starting' until it does"
