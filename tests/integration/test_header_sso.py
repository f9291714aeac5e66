"""auth.method: header against a real root hub (issue 16; hub/auth_header.py).

The reverse proxy is a real process (sso_services.py proxy) in a network namespace of its own,
so it reaches the hub from an address no local account can use (one of this machine's own, even
127.0.0.2, any local process could bind). A username header sent from anywhere else -- to the
hub's public port from this machine, with a forged X-Forwarded-For, or to its internal port --
is refused. The who-am-I way is a real HTTP service (sso_services.py whoami) on loopback.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

pytestmark = pytest.mark.integration

SERVICES = Path(__file__).with_name("sso_services.py")


def wait_answering(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else proc.returncode
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def netns():
    """A network namespace joined to this machine by a veth pair: (namespace, host side address,
    namespace side address)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (a network namespace for the reverse proxy)")
    tag = secrets.token_hex(3)
    name, host_if, ns_if = f"mlwsso{tag}", f"mlwh{tag}", f"mlwn{tag}"
    subnet = f"10.{200 + int(tag[:2], 16) % 50}.{int(tag[2:4], 16)}"
    host_ip, ns_ip = f"{subnet}.1", f"{subnet}.2"
    steps = [
        ["ip", "netns", "add", name],
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
        ["ip", "link", "set", ns_if, "netns", name],
        ["ip", "addr", "add", f"{host_ip}/30", "dev", host_if],
        ["ip", "link", "set", host_if, "up"],
        ["ip", "netns", "exec", name, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if],
        ["ip", "netns", "exec", name, "ip", "link", "set", ns_if, "up"],
        ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
    ]
    try:
        for step in steps:
            subprocess.run(step, check=True, capture_output=True, text=True)
        yield name, host_ip, ns_ip
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def start_proxy(namespace: str, listen: str, upstream: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["ip", "netns", "exec", namespace, sys.executable, str(SERVICES), "proxy"]
        + ["--listen", listen, "--upstream", upstream],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_a_username_header_from_the_reverse_proxy_and_spoofs_refused(make_hub, netns):
    namespace, host_ip, ns_ip = netns
    hub = make_hub(
        **{
            "hub.ip": "0.0.0.0",
            "auth.admin_users": "[teacher]",
            "auth.header.trusted_proxies": f"[{ns_ip}]",
            "auth.method": "header",
        }
    )
    hub.start()
    proxy = start_proxy(namespace, f"{ns_ip}:8080", f"http://{host_ip}:{hub.port}")
    try:
        front = f"http://{ns_ip}:8080"
        wait_answering(front + "/hub/health", proxy)

        # through the company's proxy: signed in, the name by the project's rule
        alice = httpx.Client(base_url=front, timeout=60)
        signed = alice.get("/hub/login", headers={"X-Test-Sso-User": "Alice"})
        assert signed.status_code == 302, signed.text
        me = alice.get("/hub/api/user")
        assert me.status_code == 200 and me.json()["name"] == "alice", me.text
        assert me.json()["admin"] is False
        teacher = httpx.Client(base_url=front, timeout=60)
        teacher.get("/hub/login", headers={"X-Test-Sso-User": "teacher"})
        assert teacher.get("/hub/api/user").json()["admin"] is True

        # the browser's own header is dropped by the proxy: no SSO session, not signed in
        nobody = httpx.get(front + "/hub/login", headers={"X-Remote-User": "teacher"}, timeout=60)
        assert nobody.status_code == 401 and "not signed in" in nobody.text

        # a name the rule refuses gets a page saying so, and no account
        odd = httpx.get(front + "/hub/login", headers={"X-Test-Sso-User": "Jane.Doe@uni.edu"})
        assert odd.status_code == 403 and "cannot be used here" in odd.text, odd.text

        # spoofs from this machine: the public port (even naming the proxy in X-Forwarded-For)
        # and the hub's internal port
        for url, extra in (
            (f"http://127.0.0.1:{hub.port}", {}),
            (f"http://{host_ip}:{hub.port}", {"X-Forwarded-For": ns_ip}),
            (f"http://127.0.0.1:{hub.internal_port}", {"X-Forwarded-For": ns_ip}),
        ):
            spoof = httpx.Client(base_url=url, timeout=60)
            refused = spoof.get("/hub/login", headers={"X-Remote-User": "teacher", **extra})
            assert refused.status_code == 403, (url, refused.status_code, refused.text)
            assert "Sign in through your organisation" in refused.text
            assert "Traceback" not in refused.text
            assert spoof.get("/hub/api/user").status_code in (401, 403)
        hub.wait_log("Refused X-Remote-User header 'teacher'")
    finally:
        stop(proxy)


def test_a_trusted_address_of_this_machine_is_refused_under_a_root_hub(make_hub):
    if os.geteuid() != 0:
        pytest.skip("a root hub")
    hub = make_hub(**{"auth.header.trusted_proxies": "[127.0.0.2]", "auth.method": "header"})
    hub.start()
    page = httpx.get(
        f"{hub.url}/hub/login", headers={"X-Remote-User": "teacher"}, timeout=60
    )  # a local account binding 127.0.0.2 would look exactly like the proxy
    assert page.status_code == 503 and "unsafe" in page.text, page.text
    hub.wait_log("hold addresses of this machine")


def test_a_who_am_i_service_and_its_login_page(make_hub):
    from .hubctl import free_port

    port = free_port()
    service = subprocess.Popen(
        [sys.executable, str(SERVICES), "whoami", "--listen", f"127.0.0.1:{port}"]
        + ["--session", "good-token=Bob"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_answering(f"http://127.0.0.1:{port}/login", service)
        hub = make_hub(
            **{
                "auth.header.whoami_url": f"http://127.0.0.1:{port}/whoami",
                "auth.header.cookies": "[corp_session]",
                "auth.header.login_url": f"http://127.0.0.1:{port}/login?return={{next}}",
                "auth.method": "header",
            }
        )
        hub.start()

        # not signed in at the company: sent to its login page, with the way back
        anonymous = httpx.get(f"{hub.url}/hub/login?next=%2Fhub%2Fhome", timeout=60)
        assert anonymous.status_code == 302, anonymous.text
        target = urlsplit(anonymous.headers["Location"])
        assert (target.port, target.path) == (port, "/login")
        back = parse_qs(target.query)["return"][0]
        assert back.startswith(f"{hub.url}/hub/login") and "next=" in back, back

        # signed in there (its cookie on this host): signed in here, as bob
        bob = httpx.Client(base_url=hub.url, cookies={"corp_session": "good-token"}, timeout=60)
        assert bob.get("/hub/login").status_code == 302
        assert bob.get("/hub/api/user").json()["name"] == "bob"
        wrong = httpx.get(f"{hub.url}/hub/login", cookies={"corp_session": "forged"}, timeout=60)
        assert wrong.status_code == 302 and f":{port}/login" in wrong.headers["Location"]

        # the service down: a page that says so, not a redirect loop or a traceback
        stop(service)
        down = httpx.get(f"{hub.url}/hub/login", cookies={"corp_session": "good-token"}, timeout=60)
        assert down.status_code == 503 and "not answering" in down.text, down.text
        assert "Traceback" not in down.text
    finally:
        stop(service)
