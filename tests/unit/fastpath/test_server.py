"""fastpath.server, the fork server: importing it loads nothing of the hub (it runs as root and
every module it holds is copied into each student's process), and a request it cannot use is
refused in one line of its log, with no traceback and no process forked for it.

The servers it forks for real users: tests/integration/test_fast_path.py and test_kernel_fork.py.
"""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import mlworkshop.fastpath
from mlworkshop.fastpath import framing
from mlworkshop.fastpath.client import fork_server_env
from mlworkshop.fastpath.protocol import SERVER_MODULE

HUB_SIDE = (
    "mlworkshop.hub",
    "mlworkshop.cli",
    "mlworkshop.usage",
    "mlworkshop.config",
    "jupyterhub",
    "mlworkshop.fastpath.client",
    "sqlalchemy",
    "traitlets",
    "pydantic",
)


def _modules_after(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout
    return json.loads(out.splitlines()[-1])


@pytest.mark.parametrize("module", [SERVER_MODULE, "mlworkshop.fastpath.kernels"])
def test_importing_the_server_loads_nothing_of_the_hub(module):
    """What the root process holds before it preloads JupyterLab (kernels: with --kernels)."""
    loaded = _modules_after(f"import {module}")
    assert module in loaded
    assert [m for m in loaded if m.startswith(HUB_SIDE)] == []


def test_the_package_itself_imports_nothing():
    loaded = _modules_after("import mlworkshop.fastpath")
    assert [m for m in loaded if m.startswith("mlworkshop.fastpath.")] == []
    tree = ast.parse(Path(mlworkshop.fastpath.__file__).read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]


@pytest.fixture(scope="module")
def fork_server(tmp_path_factory):
    """The fork server as the hub starts it (fastpath.client.ForkServer.start), servers only."""
    root = tmp_path_factory.mktemp("forkserver")
    sock, log_path = str(root / "forkserver.sock"), root / "forkserver.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", SERVER_MODULE, sock],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=fork_server_env(dict(os.environ)),
            cwd="/",
        )
    deadline = time.monotonic() + 120
    while "ready on" not in log_path.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)
    yield proc, sock, log_path
    proc.stdin.close()  # as the hub going away: the fork server follows
    proc.wait(timeout=30)


def _ask(sock_path: str, raw: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(30)
        conn.connect(sock_path)
        conn.sendall(raw)
        conn.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
        return reply


def _wait_childless(proc: subprocess.Popen) -> list:
    deadline = time.monotonic() + 10
    while (children := psutil.Process(proc.pid).children()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return children


@pytest.mark.parametrize(
    "raw, logged",
    [
        (b"GET / HTTP/1.1\n", "server request refused: garbled message"),
        (b'{"argv": ["x"]', "server request refused: connection closed before a whole request"),
        (b'{"argv": ["x"], "env": {}, "cwd": "/"}\n{"argv": ["y"]}\n', "more than one message"),
    ],
)
def test_a_garbled_request_is_one_line_in_the_log(fork_server, raw, logged):
    proc, sock, log_path = fork_server
    assert (
        _ask(sock, raw) == b""
    )  # nobody to answer: the hub's side says "no answer from the fork server"
    assert _wait_childless(proc) == []
    log = log_path.read_text()
    assert logged in log and "Traceback" not in log, log
    assert proc.poll() is None, "the fork server itself keeps running"


@pytest.mark.parametrize(
    "change, why",
    [
        ({"uid": 0, "gid": 0}, "uid must be a whole number from 1"),
        ({"cwd": "home/ann"}, "cwd must be an absolute path"),
        ({"env": {"A": 1}}, "env must map strings to strings"),
        ({"run_as": "root"}, "unknown field(s) run_as"),
    ],
)
def test_a_request_the_hub_cannot_have_meant_is_refused_with_a_reason(fork_server, change, why):
    proc, sock, log_path = fork_server
    request = {"argv": ["mlworkshop.fastpath.singleuser"], "env": {}, "cwd": "/", **change}
    reply = framing.decode(_ask(sock, framing.encode(request)))
    assert why in reply["error"] and "pid" not in reply
    assert _wait_childless(proc) == [], "a child stayed behind for a refused request"
    log = log_path.read_text()
    assert why in log and "Traceback" not in log, log
