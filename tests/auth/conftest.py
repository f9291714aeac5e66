"""Real identity providers on loopback for the sign-in tests, started and stopped by fixtures.

- an OpenID Connect provider: tests/auth/oidc_provider (zitadel/oidc's OpenID Provider with its
  own login form; why not Dex: see its main.go), built once with the Go toolchain from the Go
  module proxy into /var/cache/mlworkshop-test/ (nice 19), keyed by a hash of its source;
- OpenLDAP: Debian's slapd (scripts/system-deps.sh installs slapd and ldap-utils), a private
  server per test on a free port with its own config, database folder and test directory.
The hub factory `make_hub` is the integration tests' (tests/integration/conftest.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import make_hub  # noqa: F401 (re-exported fixture)
from tests.integration.hubctl import free_port

CACHE = Path(os.environ.get("MLW_TEST_CACHE", "/var/cache/mlworkshop-test"))
PROVIDER_SRC = Path(__file__).parent / "oidc_provider"
SLAPD = "/usr/sbin/slapd"
LDAP_BASE = "dc=mlw,dc=test"
LDAP_ADMIN = f"cn=admin,{LDAP_BASE}"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _go() -> str | None:
    return shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )


def oidc_provider_binary() -> Path:
    """The provider's binary, built at most once per version of its source."""
    digest = hashlib.sha256()
    for name in ("main.go", "go.mod", "go.sum"):
        digest.update((PROVIDER_SRC / name).read_bytes())
    target = CACHE / f"oidc-provider-{digest.hexdigest()[:16]}"
    if target.exists():
        return target
    go = _go()
    if go is None:
        pytest.skip("the OIDC provider is built with Go (not installed here)")
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
    build = subprocess.run(
        ["nice", "-n", "19", go, "build", "-trimpath", "-o", str(tmp), "."],
        cwd=PROVIDER_SRC,
        env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly"},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if build.returncode != 0:
        raise AssertionError(f"building the OIDC provider failed:\n{build.stdout}\n{build.stderr}")
    os.replace(tmp, target)
    return target


@dataclass
class OIDCProvider:
    """One provider process: users from a JSON file, one confidential client."""

    binary: Path
    workdir: Path
    redirect_uris: list[str]
    users: dict
    client_id: str = "mlworkshop-hub"
    client_secret: str = "hub-client-secret"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self, client_secret: str | None = None) -> None:
        if client_secret is not None:
            self.client_secret = client_secret
        users_file = self.workdir / "users.json"
        users_file.write_text(json.dumps(self.users))
        log = open(self.workdir / "provider.log", "a")
        self.proc = subprocess.Popen(
            [str(self.binary)],
            env={
                "PATH": os.environ.get("PATH", ""),
                "PORT": str(self.port),
                "ISSUER": self.issuer,
                "USERS_FILE": str(users_file),
                "CLIENT_ID": self.client_id,
                "CLIENT_SECRET": self.client_secret,
                "REDIRECT_URI": ",".join(self.redirect_uris),
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        url = self.issuer + ".well-known/openid-configuration"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the OIDC provider exited:\n{self.log()}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the OIDC provider did not answer within 30 s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        path = self.workdir / "provider.log"
        return path.read_text(errors="replace") if path.exists() else ""


def oidc_user(user_id: str, username: str, password: str, groups: list[str]) -> dict:
    return {
        "ID": user_id,
        "Username": username,
        "Password": password,
        "FirstName": username.split("@")[0],
        "LastName": "Test",
        "Email": username if "@" in username else f"{username}@uni.test",
        "EmailVerified": True,
        "PreferredLanguage": "en",
        "IsAdmin": False,
        "Groups": groups,
    }


@pytest.fixture
def oidc_provider():
    """Factory: a started provider for a hub's callback URL(s) and a set of users."""
    binary = oidc_provider_binary()
    started: list[OIDCProvider] = []

    def factory(redirect_uris: list[str], users: list[dict], **kwargs) -> OIDCProvider:
        workdir = Path(tempfile.mkdtemp(prefix="mlw-oidc-"))
        provider = OIDCProvider(
            binary, workdir, redirect_uris, {u["ID"]: u for u in users}, **kwargs
        )
        started.append(provider)
        provider.start()
        return provider

    yield factory
    for provider in started:
        provider.stop()
        print(f"--- OIDC provider log ---\n{provider.log()[-4000:]}")
        shutil.rmtree(provider.workdir, ignore_errors=True)


# --- OpenLDAP ----------------------------------------------------------------------------
SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
database mdb
maxsize 104857600
suffix "{base}"
rootdn "{admin}"
rootpw {admin_pw}
directory {dir}/data
access to attrs=userPassword by anonymous auth by self write by * none
access to * by * read
"""


def ldif_entries(people: dict[str, str], groups: dict[str, list[str]]) -> str:
    """The test directory: people (uid -> password) and groupOfNames groups (cn -> uids)."""
    parts = [
        f"dn: {LDAP_BASE}\nobjectClass: dcObject\nobjectClass: organization\no: mlw\ndc: mlw\n",
        f"dn: ou=people,{LDAP_BASE}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: ou=groups,{LDAP_BASE}\nobjectClass: organizationalUnit\nou: groups\n",
    ]
    for uid, password in people.items():
        parts.append(
            f"dn: uid={uid},ou=people,{LDAP_BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\n"
            f"cn: {uid}\nsn: Test\nuserPassword: {password}\n"
        )
    for cn, members in groups.items():
        lines = "".join(f"member: uid={m},ou=people,{LDAP_BASE}\n" for m in members)
        parts.append(
            f"dn: cn={cn},ou=groups,{LDAP_BASE}\nobjectClass: groupOfNames\ncn: {cn}\n{lines}"
        )
    return "\n".join(parts)


@dataclass
class Directory:
    workdir: Path
    port: int
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def group_dn(self, cn: str) -> str:
        return f"cn={cn},ou=groups,{LDAP_BASE}"

    def start(self) -> None:
        log = open(self.workdir / "slapd.log", "a")
        self.proc = subprocess.Popen(
            [SLAPD, "-f", str(self.workdir / "slapd.conf"), "-h", self.url + "/", "-d", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"slapd exited:\n{self.log()}")
            probe = subprocess.run(
                ["ldapsearch", "-x", "-H", self.url, "-b", "", "-s", "base"],
                capture_output=True,
                timeout=10,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.1)
        raise AssertionError(f"slapd did not answer within 30 s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        path = self.workdir / "slapd.log"
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture
def slapd():
    """Factory: a private OpenLDAP server holding the given people and groups."""
    if not Path(SLAPD).exists() or not shutil.which("ldapadd"):
        pytest.skip("needs Debian's slapd and ldap-utils (scripts/system-deps.sh installs them)")
    started: list[Directory] = []

    def factory(people: dict[str, str], groups: dict[str, list[str]]) -> Directory:
        workdir = Path(tempfile.mkdtemp(prefix="mlw-slapd-"))
        (workdir / "data").mkdir()
        admin_pw = "admin-" + os.urandom(6).hex()
        (workdir / "slapd.conf").write_text(
            SLAPD_CONF.format(dir=workdir, base=LDAP_BASE, admin=LDAP_ADMIN, admin_pw=admin_pw)
        )
        directory = Directory(workdir, free_port())
        started.append(directory)
        directory.start()
        add = subprocess.run(
            ["ldapadd", "-x", "-H", directory.url, "-D", LDAP_ADMIN, "-w", admin_pw],
            input=ldif_entries(people, groups),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert add.returncode == 0, f"ldapadd failed: {add.stdout}\n{add.stderr}\n{directory.log()}"
        return directory

    yield factory
    for directory in started:
        directory.stop()
        shutil.rmtree(directory.workdir, ignore_errors=True)


# --- Chromium ------------------------------------------------------------------------------
@pytest.fixture
def chromium():
    """A headless Chromium page factory (Playwright, Debian's /usr/bin/chromium)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (scripts/system-deps.sh installs it)")
    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp(prefix="mlw-chromium-"))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            env={**os.environ, "HOME": str(home)},
        )
        try:
            yield lambda: browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        finally:
            browser.close()
            shutil.rmtree(home, ignore_errors=True)
