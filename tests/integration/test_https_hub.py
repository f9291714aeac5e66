"""HTTPS on a real hub (run as root, so its proxy runs as `_mlw-proxy`): a self-signed certificate
from the site's own CA, trusted by httpx and by Debian's Chromium (its NSS database given the CA,
as a student's browser would be), which log in and run a cell over wss://; the plain-HTTP port
answers 301 to HTTPS; only root and the proxy's account can read the key. A key of another
certificate, an expired certificate and an unreadable key stop `mlworkshop up` with a message.
The hub's output is also in <site>/logs/hub.log, the proxy's lines in proxy.log.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from mlworkshop.hub import tls
from mlworkshop.site import Site

from .hubctl import MLW, REPO, Browser, execute_request, free_port, mlw

pytestmark = pytest.mark.integration

ALICE_PW = "alice-Secret-42"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts"
PROXY_GROUP = "_mlw-proxy"


def https_url(hub) -> str:
    return f"https://127.0.0.1:{hub.port}"


def start_https(hub, timeout: float = 150) -> ssl.SSLContext:
    """`mlworkshop up` in the background; returns a context trusting the site's CA once the hub
    answers /hub/health over HTTPS."""
    hub.log_path = hub.site / "logs" / f"hub-{int(time.time() * 1000)}.log"
    with open(hub.log_path, "w") as log:
        hub.proc = subprocess.Popen(
            [*MLW, "up", "--site", str(hub.site)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    ca = tls.ca_path(Site(hub.site))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hub.proc.poll() is not None:
            raise AssertionError(f"hub exited with {hub.proc.returncode}:\n{hub.log()}")
        if ca.exists():
            context = ssl.create_default_context(cafile=str(ca))
            try:
                if (
                    httpx.get(https_url(hub) + "/hub/health", verify=context, timeout=2).status_code
                    == 200
                ):
                    return context
            except httpx.HTTPError:
                pass
        time.sleep(0.3)
    raise AssertionError(f"hub did not answer over HTTPS within {timeout}s:\n{hub.log()}")


async def run_cell_wss(base: str, user: str, token: str, context: ssl.SSLContext, code: str) -> str:
    import websockets

    headers = {"Authorization": f"token {token}"}
    async with httpx.AsyncClient(
        base_url=base, headers=headers, verify=context, timeout=60
    ) as client:
        kernel = await client.post(f"/user/{user}/api/kernels", json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        url = (
            base.replace("https://", "wss://")
            + f"/user/{user}/api/kernels/{kernel.json()['id']}/channels"
        )
        try:
            async with websockets.connect(
                url, additional_headers=headers, ssl=context, open_timeout=60
            ) as ws:
                msg_id, request = execute_request(code, username=user)
                await ws.send(request)
                output = []
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 60))
                    if msg.get("parent_header", {}).get("msg_id") != msg_id:
                        continue
                    if msg["msg_type"] == "stream":
                        output.append(msg["content"]["text"])
                    elif msg["msg_type"] == "error":
                        raise AssertionError(msg["content"]["evalue"])
                    elif (
                        msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
                    ):
                        return "".join(output)
        finally:
            await client.delete(f"/user/{user}/api/kernels/{kernel.json()['id']}")


def chromium_trusting(ca: Path, home: Path):
    """Chromium reads trusted authorities from $HOME/.pki/nssdb: the CA goes in, as a student
    importing it in their browser's settings would do."""
    if not Path(CHROMIUM).exists() or shutil.which("certutil") is None:
        pytest.skip("needs Debian's chromium and certutil (apt-get install chromium libnss3-tools)")
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(
        ["certutil", "-d", f"sql:{nssdb}", "-N", "--empty-password"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "certutil",
            "-d",
            f"sql:{nssdb}",
            "-A",
            "-t",
            "C,,",
            "-n",
            "mlworkshop-site-ca",
            "-i",
            str(ca),
        ],
        check=True,
        capture_output=True,
    )


def test_https_self_signed_in_httpx_and_chromium(make_hub):
    redirect = free_port()
    hub = make_hub(**{"hub.https.cert": "self-signed", "hub.https.redirect_port": redirect})
    mlw(hub.site, "user", "add", "alice", "--password-stdin", input=ALICE_PW + "\n")
    context = start_https(hub)
    base = https_url(hub)
    ca_file = tls.ca_path(Site(hub.site))

    # `up` said which CA students must trust, with the fingerprint a browser shows
    fingerprint = tls.fingerprint(x509.load_pem_x509_certificate(ca_file.read_bytes()))
    hub.wait_log(
        f"students' browsers must trust the CA {ca_file} (SHA-256 fingerprint {fingerprint})"
    )
    hub.wait_log(f"mlworkshop hub on https://127.0.0.1:{hub.port}/")
    assert "BEGIN PRIVATE KEY" not in hub.log()

    # it is TLS for real: a client that does not trust the CA is refused
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(base + "/hub/health")

    # the plain-HTTP port only redirects
    plain = httpx.get(
        f"http://127.0.0.1:{redirect}/hub/login?next=%2Fhub%2Fhome", follow_redirects=False
    )
    assert plain.status_code == 301
    assert plain.headers["location"] == f"{base}/hub/login?next=%2Fhub%2Fhome"

    # httpx trusting the CA logs in, starts a server and runs a cell over wss://
    alice = Browser(base)
    alice.client = httpx.Client(base_url=base, follow_redirects=True, timeout=60, verify=context)
    assert alice.login("alice", ALICE_PW).status_code == 302
    alice.start_server("alice", timeout=120)
    token = alice.new_token("alice")
    assert asyncio.run(run_cell_wss(base, "alice", token, context, "print(6 * 7)")) == "42\n"

    # only root and the proxy's account read the key: not alice's account, not from the secrets
    cert_copy, key_copy = tls.proxy_tls_files(Site(hub.site))
    st, folder = key_copy.stat(), key_copy.parent.stat()
    import grp

    proxy_gid = grp.getgrnam(PROXY_GROUP).gr_gid
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, proxy_gid, 0o640)
    assert (folder.st_uid, folder.st_gid, folder.st_mode & 0o777) == (0, proxy_gid, 0o750)
    account = hub.prefix + "alice"
    for secret in (key_copy, tls.tls_secrets(Site(hub.site)) / "server.key"):
        read = subprocess.run(
            ["runuser", "-u", account, "--", "cat", str(secret)], capture_output=True, text=True
        )
        assert read.returncode != 0 and "Permission denied" in read.stderr, read
    proxy_reads = subprocess.run(
        [
            "setpriv",
            f"--reuid={PROXY_GROUP}",
            f"--regid={PROXY_GROUP}",
            "--clear-groups",
            "head",
            "-c",
            "27",
            str(key_copy),
        ],
        capture_output=True,
        text=True,
    )
    assert proxy_reads.stdout == "-----BEGIN PRIVATE KEY-----", proxy_reads

    # Chromium trusting the CA: log in, open JupyterLab, run a cell; the kernel's channel is wss://
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp(prefix="mlw-chromium-"))
    try:
        chromium_trusting(ca_file, home)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM,
                args=ARGS,
                headless=True,
                env={**os.environ, "HOME": str(home)},
            )
            page = browser.new_context(
                viewport={"width": 1280, "height": 900}
            ).new_page()  # no ignore_https_errors
            sockets: list[str] = []
            page.on("websocket", lambda ws: sockets.append(ws.url))
            page.goto(base + "/hub/login?next=%2Fuser%2Falice%2Flab")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", ALICE_PW)
            page.click("input[type=submit], button[type=submit]")
            page.wait_for_url("**/user/alice/lab**", timeout=120_000)
            ARTIFACTS.mkdir(exist_ok=True)
            try:
                page.click(".jp-LauncherCard[data-category='Notebook']", timeout=120_000)
                # the notebook's kernel is up (its channel open) before the cell is typed and run
                page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
                    timeout=120_000
                )
                editor = page.locator(".jp-Notebook .jp-Cell .cm-content").first
                editor.click()
                page.keyboard.type("print('over', 6 * 7)")
                output = page.locator(".jp-OutputArea-output", has_text="over 42").first
                # JupyterLab sometimes drops a run asked for while it reconnects a new notebook's
                # kernel (its channel open, the prompt never [*]); a student presses Ctrl-Enter again
                for attempt in range(4):
                    editor.click()
                    page.keyboard.press("Control+Enter")
                    try:
                        output.wait_for(timeout=30_000)
                        break
                    except PlaywrightTimeout:
                        print(f"run {attempt + 1}: no output within 30 s")
                output.wait_for(timeout=1_000)
            finally:
                page.screenshot(path=str(ARTIFACTS / "https-lab.png"))
                user_log = hub.site / "logs" / "users" / "alice.log"
                if user_log.exists():
                    shutil.copy(user_log, ARTIFACTS / "https-alice.log")
                browser.close()
        assert any(
            url.startswith(f"wss://127.0.0.1:{hub.port}/user/alice/api/kernels/") for url in sockets
        ), sockets
    finally:
        shutil.rmtree(home, ignore_errors=True)

    # the hub's output is in logs/hub.log too, the proxy's lines in proxy.log (root's, 0640)
    logs = hub.site / "logs"
    assert (
        "JupyterHub" in (logs / "hub.log").read_text()
        and (logs / "hub.log").stat().st_mode & 0o777 == 0o640
    )
    shown = mlw(hub.site, "logs", "proxy", "--lines", "0").stdout
    assert "Proxying https://" in shown and "Added HTTP to HTTPS redirection" in shown
    assert "JupyterHub app:" not in shown


def _pair(folder: Path, start: dt.datetime, days: int, name: str) -> tuple[Path, Path]:
    from tests.unit.test_tls import make_pair

    return make_pair(folder, name=name, start=start, days=days)


@pytest.mark.parametrize("problem", ["mismatched key", "expired", "unreadable key"])
def test_up_refuses_a_bad_certificate_or_key(make_hub, problem):
    hub = make_hub()
    files = Path(tempfile.mkdtemp(prefix="mlw-certs-"))
    try:
        now = dt.datetime.now(dt.UTC)
        cert, key = _pair(files, now - dt.timedelta(days=1), 90, "hub.example.org")
        if problem == "mismatched key":
            _, key = _pair(files / "other", now - dt.timedelta(days=1), 90, "other.example.org")
            expected = [
                f"hub.https.key = {str(key)!r} is not the key of the certificate hub.https.cert"
            ]
        elif problem == "expired":
            cert, key = _pair(files / "old", now - dt.timedelta(days=400), 365, "hub.example.org")
            expected = [f"hub.https.cert = {str(cert)!r} expired on", "certbot renew"]
        else:  # encrypted: nobody is there to type its passphrase when the proxy starts
            from tests.unit.test_tls import make_pair

            cert, key = make_pair(files / "enc", password=b"a passphrase")
            expected = [
                f"hub.https.key = {str(key)!r}: the key is encrypted with a passphrase",
                "openssl pkey",
            ]
        mlw(hub.site, "config", "set", "hub.https.cert", str(cert))
        mlw(hub.site, "config", "set", "hub.https.key", str(key))
        result = mlw(hub.site, "up", check=False)
        assert result.returncode == 2, result
        assert "Traceback" not in result.stdout + result.stderr
        for fragment in expected:
            assert fragment in result.stderr, result.stderr
        assert not tls.proxy_tls_files(Site(hub.site))[1].exists()  # nothing copied for the proxy
    finally:
        shutil.rmtree(files, ignore_errors=True)


def test_up_refuses_a_key_that_is_a_folder_or_missing(make_hub, tmp_path):
    hub = make_hub()
    files = Path(tempfile.mkdtemp(prefix="mlw-certs-"))
    try:
        cert, key = _pair(
            files, dt.datetime.now(dt.UTC) - dt.timedelta(days=1), 90, "hub.example.org"
        )
        mlw(hub.site, "config", "set", "hub.https.cert", str(cert))
        mlw(hub.site, "config", "set", "hub.https.key", str(key))
        key.unlink()  # after `config set`, which refuses a missing file (config/setchecks.py)
        result = mlw(hub.site, "up", check=False)
        assert (
            result.returncode == 2
            and f"hub.https.key = {str(key)!r}: no such file" in result.stderr
        ), result
        key.mkdir()
        result = mlw(hub.site, "up", check=False)
        assert result.returncode == 2 and "is a folder, not a PEM file" in result.stderr, result
    finally:
        shutil.rmtree(files, ignore_errors=True)
