"""Test helpers that drive a real mlworkshop hub: start/stop it, and act as a browser would.

Nothing here is mocked: `mlworkshop up` runs JupyterHub + configurable-http-proxy on free
loopback ports, and clients speak HTTP and websockets to it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from mlworkshop.hub.proxy_process import stop_kept_proxy

REPO = Path(__file__).resolve().parents[2]
MLW = [sys.executable, "-m", "mlworkshop.cli.main"]


def wait_until(check, timeout: float = 60, what: str = "condition", every: float = 0.25):
    """check()'s first true value, asked every `every` s; AssertionError naming `what` (and the
    last value seen) after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"not within {timeout:.0f} s: {what} (last: {last!r})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_site_dir() -> Path:
    """A site every user account can traverse (pytest's tmp_path is 0700 under root)."""
    path = Path(tempfile.mkdtemp(prefix="mlw-site-", dir="/tmp"))
    os.chmod(path, 0o755)
    return path


def mlw(
    site: Path, *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [*MLW, *args, "--site", str(site)], input=input, capture_output=True, text=True, timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"mlworkshop {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float) -> str | None:
    """Wait until a hub answers /hub/health through its proxy; None, or what went wrong."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"hub exited with {proc.returncode}"
        try:
            if httpx.get(url + "/hub/health", timeout=1).status_code == 200:
                return None
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return f"hub did not answer within {timeout}s"


@dataclass
class Hub:
    site: Path
    port: int = field(default_factory=free_port)
    internal_port: int | None = field(default_factory=free_port)
    proxy_api_port: int | None = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def configure(self, **settings: object) -> None:
        mlw(self.site, "init")
        values = {
            "hub.port": self.port,
            "hub.internal_port": self.internal_port,
            "hub.proxy_api_port": self.proxy_api_port,
            # no doctor watch service unless a test asks (tests/ops/test_doctor_hub.py does):
            # it costs every hub start CPU, and hundreds of hubs start in a run
            "doctor.watch_every": 0,
            **settings,
        }
        pairs = [
            text
            for key, value in values.items()
            if value is not None  # None: the config's own default (a root hub's ports < 1024)
            for text in (key, str(value))
        ]
        mlw(self.site, "config", "set", *pairs)  # one command: each start costs ~1 s here

    def start(self, timeout: float = 150) -> None:
        self.log_path = self.site / "logs" / f"hub-{int(time.time() * 1000)}.log"
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [*MLW, "up", "--site", str(self.site)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        problem = wait_healthy(self.url, self.proc, timeout)
        if problem:
            raise AssertionError(f"{problem}:\n{self.log()}")
        # a restarted hub answers through the proxy it kept (hub/kept_proxy.py) as soon as it
        # listens, before its services have started: a test goes on once they have
        self.wait_log("JupyterHub is now running", timeout)

    def stop(self, timeout: float = 30) -> float:
        """SIGINT (Ctrl-C) and wait; returns how long the hub took to exit."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        started = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(
                f"hub did not stop within {timeout}s:\n{self.log()[-3000:]}"
            ) from None
        return time.monotonic() - started

    def log(self) -> str:
        return (
            self.log_path.read_text(errors="replace")
            if self.log_path and self.log_path.exists()
            else ""
        )

    def wait_log(self, text: str, timeout: float = 30, count: int = 1) -> str:
        """The log once it holds `text` (`count` times). The hub's output reaches its file
        through the tee process (hub/hublog.py): a line the hub wrote just before it answered may
        land a moment after the answer, so a test that reads the log at once can miss it (seen
        under load, and once in CI)."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()
            if log.count(text) >= count:
                return log
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not {count}x in the hub's log within {timeout}s: {text!r}\n{log[-3000:]}"
                )
            time.sleep(0.1)

    def browser(self) -> Browser:
        return Browser(self.url)


class Browser:
    """An HTTP client that behaves like a browser: cookies, redirects, the _xsrf form field."""

    def __init__(self, base: str):
        self.base = base
        self.client = httpx.Client(base_url=base, follow_redirects=True, timeout=60)

    def close(self) -> None:
        self.client.close()

    def _xsrf(self, path: str) -> str:
        page = self.client.get(path)
        match = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
        assert match, f"no _xsrf field on {path} ({page.status_code})"
        return match.group(1)

    def signup(self, username: str, password: str, confirm: str | None = None) -> httpx.Response:
        token = self._xsrf("/hub/signup")
        return self.client.post(
            "/hub/signup",
            data={
                "_xsrf": token,
                "username": username,
                "password": password,
                "password_confirm": password if confirm is None else confirm,
            },
        )

    def login(self, username: str, password: str, follow: bool = False) -> httpx.Response:
        """POST the login form. Without follow, a success is the 302 (a browser would go on to
        /hub/spawn and start the server)."""
        token = self._xsrf("/hub/login")
        return self.client.post(
            "/hub/login",
            data={"_xsrf": token, "username": username, "password": password},
            follow_redirects=follow,
        )

    def logged_in_as(self) -> str | None:
        response = self.client.get("/hub/api/user")
        return response.json()["name"] if response.status_code == 200 else None

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"X-XSRFToken": self.client.cookies.get("_xsrf", path="/hub/") or ""}
        return self.client.request(method, "/hub/api" + path, headers=headers, **kwargs)

    def new_token(self, username: str) -> str:
        response = self.api("POST", f"/users/{username}/tokens", json={"note": "test"})
        assert response.status_code in (200, 201), response.text
        return response.json()["token"]

    def start_server(self, username: str, timeout: float = 90) -> dict:
        response = self.api("POST", f"/users/{username}/server")
        assert response.status_code in (201, 202), f"{response.status_code} {response.text}"
        return self.wait_ready(username, timeout)

    def wait_ready(self, username: str, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api("GET", f"/users/{username}").json()
            server = (model.get("servers") or {}).get("")
            if server and server.get("ready"):
                return server
            if not model.get("pending") and not server:
                raise AssertionError(f"{username}'s server failed to start: {model}")
            time.sleep(0.25)
        raise AssertionError(f"{username}'s server not ready within {timeout}s")

    def stop_server(self, username: str, timeout: float = 60) -> None:
        response = self.api("DELETE", f"/users/{username}/server")
        assert response.status_code in (202, 204), response.text
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.api("GET", f"/users/{username}").json().get("servers"):
                return
            time.sleep(0.25)
        raise AssertionError(f"{username}'s server did not stop within {timeout}s")


class Server:
    """A user's JupyterLab server reached through the proxy with an API token."""

    def __init__(self, base: str, username: str, token: str):
        self.prefix = f"/user/{username}"
        self.client = httpx.Client(
            base_url=base, headers={"Authorization": f"token {token}"}, timeout=60
        )
        self.token = token
        self.base = base

    def contents(self, method: str, path: str, **kwargs) -> httpx.Response:
        return self.client.request(method, f"{self.prefix}/api/contents/{path}", **kwargs)

    def write_text(self, path: str, text: str) -> httpx.Response:
        return self.contents("PUT", path, json={"type": "file", "format": "text", "content": text})

    def read_text(self, path: str) -> httpx.Response:
        return self.contents("GET", path, params={"content": "1", "format": "text", "type": "file"})

    async def run_code(self, code: str, timeout: float = 60, shutdown: bool = True) -> str:
        """Execute code in a new kernel over the websocket; returns stdout (raises on error).
        shutdown=False leaves the kernel running (as a student does, until the server stops)."""
        import websockets

        kernel = self.client.post(f"{self.prefix}/api/kernels", json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        kernel_id = kernel.json()["id"]
        ws_url = self.base.replace("http", "ws") + f"{self.prefix}/api/kernels/{kernel_id}/channels"
        try:
            async with websockets.connect(
                ws_url,
                additional_headers={"Authorization": f"token {self.token}"},
                open_timeout=timeout,
            ) as ws:
                return await execute(ws, code, timeout)
        finally:
            if shutdown:
                self.client.delete(f"{self.prefix}/api/kernels/{kernel_id}")


def lab_page_config(html: str) -> dict:
    """The page config a JupyterLab page carries (its jupyter-config-data script)."""
    found = re.search(
        r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S
    )
    assert found, f"no JupyterLab page config in {html[:300]!r}"
    return json.loads(found.group(1))


def execute_request(code: str, username: str = "test") -> tuple[str, str]:
    """(msg_id, the JSON text) of a Jupyter execute_request for `code` on the shell channel."""
    msg_id = uuid.uuid4().hex
    message = {
        "header": {
            "msg_id": msg_id,
            "username": username,
            "session": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "channel": "shell",
        "buffers": [],
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
        },
    }
    return msg_id, json.dumps(message)


async def execute(ws, code: str, timeout: float = 60) -> str:
    """Run code on an open kernel websocket; its stdout once the kernel is idle again (raises on
    an error or after `timeout`)."""
    msg_id, request = execute_request(code)
    await ws.send(request)
    output: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = json.loads(await ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "stream":
            output.append(msg["content"]["text"])
        elif kind == "error":
            raise AssertionError(
                f"kernel error: {msg['content']['ename']}: {msg['content']['evalue']}"
            )
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(output)
    raise AssertionError("kernel did not finish in time")


def remove_site(site: Path) -> None:
    """The site's folder, and the proxy its hub keeps running between restarts
    (hub/kept_proxy.py), which `mlworkshop down` would stop (a site one folder down too)."""
    for state in [site / "state", *site.glob("*/state")]:
        stop_kept_proxy(state)
    shutil.rmtree(site, ignore_errors=True)


def remove_accounts(names: list[str]) -> None:
    """Kill the accounts' processes, wait until they are gone (userdel refuses a busy account),
    then delete the accounts."""
    for name in names:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
    for name in names:
        for _ in range(50):
            if subprocess.run(["pgrep", "-u", name], capture_output=True).returncode != 0:
                break
            time.sleep(0.1)
        subprocess.run(["userdel", name], capture_output=True)
    _remove_cgroups(names)


def _remove_cgroups(names: list[str]) -> None:
    """The accounts' cgroups (mlworkshop.cgroups): a hub leaves them to servers that outlive it."""
    from mlworkshop import cgroups

    hierarchy = cgroups.detect() if os.geteuid() == 0 else None
    for name in names if hierarchy else []:
        try:
            cgroups.remove(hierarchy, name)
        except cgroups.CgroupError:
            pass


def memory_contains(pid: int, needle: bytes) -> bool:
    """Scan a process's readable memory (root reads /proc/<pid>/mem) for a byte string."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            addresses, perms = line.split()[:2]
            if not perms.startswith("r"):
                continue
            start, end = (int(x, 16) for x in addresses.split("-"))
            try:
                mem.seek(start)
                if needle in mem.read(end - start):
                    return True
            except (OSError, ValueError, OverflowError):
                continue
    return False
