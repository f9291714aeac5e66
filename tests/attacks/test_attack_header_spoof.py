"""Issue 16: with auth.method header, a student tries to sign in as the teacher by sending the
username header themselves, from their own kernel on the hub's machine.

The company's reverse proxy is a real process in a network namespace of its own (see
tests/integration/test_header_sso.py); the student signs in through it, starts their server and,
from code run in their own kernel, sends `X-Remote-User: teacher` to the hub's public port (also
with the proxy's address in X-Forwarded-For), to the hub's internal port, and from a socket bound
to the proxy's own address (IP_FREEBIND needs no privilege). Every try is refused; none is
signed in.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import time

import httpx

from tests.integration.hubctl import Browser, Server
from tests.integration.test_header_sso import (  # noqa: F401  (netns is a fixture)
    netns,
    start_proxy,
    stop,
    wait_answering,
)

SPOOF = textwrap.dedent("""
    import http.client, json, socket

    def ask(host, port, headers, source=None):
        conn = http.client.HTTPConnection(host, port, timeout=20)
        if source:
            sock = socket.socket()
            sock.setsockopt(socket.IPPROTO_IP, 15, 1)  # IP_FREEBIND: bind an address not ours
            sock.bind((source, 0))
            sock.settimeout(5)
            try:
                sock.connect((host, port))
            except OSError as exc:
                return {"connected": False, "error": type(exc).__name__}
            conn.sock = sock
        conn.request("GET", "/hub/login", headers={"X-Remote-User": "teacher", **headers})
        answer = conn.getresponse()
        cookies = answer.getheader("Set-Cookie") or ""
        return {"connected": True, "status": answer.status,
                "signed_in": "jupyterhub-hub-login" in cookies}

    print(json.dumps([
        ask("127.0.0.1", PUBLIC, {}),
        ask("HOST_IP", PUBLIC, {"X-Forwarded-For": "NS_IP"}),
        ask("127.0.0.1", INTERNAL, {"X-Forwarded-For": "NS_IP"}),
        ask("HOST_IP", PUBLIC, {}, source="NS_IP"),
    ]))
""")


def test_a_student_cannot_sign_in_as_the_teacher_with_the_header(make_hub, netns):
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
        student = Browser(front)
        student.client.follow_redirects = False
        assert student.client.get(
            "/hub/login", headers={"X-Test-Sso-User": "mallory"}
        ).status_code in (302, 303)
        student.client.follow_redirects = True
        token = student.new_token("mallory")  # then the hub's own address: kernels need websockets
        api = httpx.Client(
            base_url=hub.url + "/hub/api", headers={"Authorization": f"token {token}"}, timeout=60
        )
        assert api.post("/users/mallory/server").status_code in (201, 202)
        deadline = time.monotonic() + 120
        while not ((api.get("/users/mallory").json().get("servers") or {}).get("") or {}).get(
            "ready"
        ):
            assert time.monotonic() < deadline, "mallory's server did not start"
            time.sleep(0.5)
        server = Server(hub.url, "mallory", token)
        code = (
            SPOOF.replace("PUBLIC", str(hub.port))
            .replace("INTERNAL", str(hub.internal_port))
            .replace("HOST_IP", host_ip)
            .replace("NS_IP", ns_ip)
        )
        results = json.loads(asyncio.run(server.run_code(code, timeout=120)))
        assert not any(r.get("signed_in") for r in results), results
        for result in results[:3]:
            assert result["connected"] and result["status"] == 403, results
        assert not results[3]["connected"] or results[3]["status"] == 403, results
        teacher = httpx.get(f"{front}/hub/api/users/teacher", timeout=30)
        assert teacher.status_code in (401, 403, 404)
    finally:
        stop(proxy)
