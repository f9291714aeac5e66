"""Issue 11, item 2: a student stands in for the hub while it is stopped.

Servers survive hub restarts and check every token by asking the hub's API on 127.0.0.1. While the
hub is down, a student who binds that port with a small HTTP server answering `/hub/api/user` with
"alice" would read and write every running student's files with a made-up token, and keep the hub
from starting again. A root hub's API and proxy-API ports are below 1024 by default, where no
student account can bind (hub/ports.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import psutil

from mlworkshop.config import MLWorkshopConfig
from tests.integration.hubctl import mlw

# Run as the student: bind the port and answer like the hub would for alice.
FAKE_HUB = r"""
import json, socket, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Hub(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"kind": "user", "name": "alice", "admin": True, "groups": [], "session_id": None,
                           "scopes": ["access:servers", "access:servers!user=alice", "read:users:name"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

try:
    server = HTTPServer(("127.0.0.1", int(sys.argv[1])), Hub)
except OSError as exc:
    print(f"refused {exc.errno}", flush=True)
    sys.exit(0)
print("bound", flush=True)
server.serve_forever()
"""

PASSWORD = "Attack-test-pw-42"


def listening_port(uid: int) -> int:
    """The port the server of the account with this uid listens on."""
    for conn in psutil.net_connections(kind="tcp"):
        if (
            conn.status == psutil.CONN_LISTEN
            and conn.pid
            and psutil.Process(conn.pid).uids().real == uid
        ):
            return conn.laddr.port
    raise AssertionError(f"no server of uid {uid} listens")


def as_student(account: str, port: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        ["runuser", "-u", account, "--", sys.executable, "-c", FAKE_HUB, str(port)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    return proc, proc.stdout.readline().strip()


def test_student_cannot_stand_in_for_a_stopped_hub(make_hub):
    # the hub's own defaults for its loopback ports, as a lab admin gets them
    hub = make_hub(**{"hub.internal_port": None, "hub.proxy_api_port": None})
    for name in ("alice", "bob"):
        mlw(hub.site, "user", "add", name, "--password-stdin", input=PASSWORD + "\n")
    hub.start()
    for name in ("alice", "bob"):
        browser = hub.browser()
        assert browser.login(name, PASSWORD).status_code == 302
        browser.start_server(name)
    alice_uid = int(
        subprocess.run(
            ["id", "-u", hub.prefix + "alice"], capture_output=True, text=True, check=True
        ).stdout
    )
    alice_port = listening_port(alice_uid)
    defaults = MLWorkshopConfig().hub  # what this (root) hub resolved its empty ports to
    hub.stop()  # alice's server keeps running, as servers do across hub restarts

    fakes = []
    try:
        for port in (defaults.api_port, defaults.proxy_port):
            proc, said = as_student(hub.prefix + "bob", port)
            fakes.append(proc)
            assert said.startswith("refused"), f"bob bound port {port} while the hub was stopped"
        # whoever answers now, alice's server accepts no made-up token
        stolen = httpx.get(
            f"http://127.0.0.1:{alice_port}/user/alice/api/contents/work",
            headers={"Authorization": "token made-up-by-bob"},
            timeout=30,
        )
        assert stolen.status_code != 200, "alice's server believed bob's fake hub"
        hub.start()  # nothing of bob's holds the hub's ports
    finally:
        for proc in fakes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
