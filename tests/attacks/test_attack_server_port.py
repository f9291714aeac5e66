"""A port the hub meant for one student's server, held by someone else when that server starts
(hub/server_port.py): another student's server, or a listener a student runs to catch a
classmate's JupyterLab. The hub must never route a student to what it does not know is theirs.

Every server is told one fixed port here (jupyterhub_config.d), so the race a class rush wins by
chance (two starts handed the same free port, or a student's listener on it) happens every time.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import subprocess
import sys
import time

from tests.integration.hubctl import Server, free_port, mlw, wait_until

PASSWORD = "Port-thief-pass-7"

# answers every GET with 200, as a server that is up would, and writes down what it was asked
LISTENER = r"""
import http.server, sys
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print(self.path, flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Answer).serve_forever()
"""


def _listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def listening_as(account: str, port: int):
    """LISTENER on 127.0.0.1:`port` as `account` (runuser) while the block runs; afterwards the
    dict yielded holds "asked": every path it was sent."""
    heard: dict[str, str] = {}
    listener = subprocess.Popen(
        ["runuser", "-u", account, "--", sys.executable, "-c", LISTENER, str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: _listens(port), timeout=30, what=f"{account}'s listener")
        yield heard
        time.sleep(0.5)  # a request sent just before the block ended still arrives
    finally:
        listener.terminate()
        heard["asked"], _ = listener.communicate(timeout=10)


def _own_server(hub, browser, name: str) -> None:
    """The student's requests reach a server of their own account: a file written through it
    belongs to them (another student's server refuses their token)."""
    server = Server(hub.url, name, browser.new_token(name))
    written = server.write_text("mine.txt", name)
    assert written.status_code in (200, 201), f"{name}: {written.status_code} {written.text}"
    home = pwd.getpwnam(hub.prefix + name).pw_dir
    assert os.stat(os.path.join(home, "mine.txt")).st_uid == pwd.getpwnam(hub.prefix + name).pw_uid


def test_a_port_held_by_someone_else_never_becomes_a_students_server(make_hub):
    port = free_port()
    hub = make_hub()
    extra = hub.site / "jupyterhub_config.d"
    extra.mkdir(exist_ok=True)
    (extra / "one_port.py").write_text(f"c.LocalSpawner.port = {port}\n")
    for name in ("mal", "una", "vic"):
        mlw(hub.site, "user", "add", name, "--password-stdin", input=PASSWORD + "\n")
    hub.start()
    browsers = {name: hub.browser() for name in ("mal", "una", "vic")}
    for name, browser in browsers.items():
        assert browser.login(name, PASSWORD).status_code == 302

    # 1. mal's server gets the port; una's start finds mal's server there (two starts handed the
    #    same port) and is started on another one
    browsers["mal"].start_server("mal")
    browsers["una"].start_server("una")
    _own_server(hub, browsers["una"], "una")

    # 2. mal's server stops; she listens on the port herself, answering everything with 200
    browsers["mal"].stop_server("mal")
    with listening_as(hub.prefix + "mal", port) as heard:
        browsers["vic"].start_server("vic")
        _own_server(hub, browsers["vic"], "vic")
    assert "/user/vic" not in heard["asked"], f"vic's requests reached mal's listener: {heard}"
    hub.wait_log(f"Port {port} was taken by uid {pwd.getpwnam(hub.prefix + 'mal').pw_uid}")
