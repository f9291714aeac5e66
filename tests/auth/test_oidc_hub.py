"""auth.method oidc against a real OpenID Connect provider on loopback (conftest.oidc_provider) and
a real hub run by `mlworkshop up`: the flow in Chromium (hub -> the provider's login form -> back ->
JupyterLab opens), groups, admins, quotas per group, refusals, and what the user and the admin see
when the provider is down or refuses the hub's client secret."""

from __future__ import annotations

import html
import pwd
import re
from urllib.parse import urljoin

import httpx
import pytest

from tests.integration.hubctl import REPO, mlw

from .conftest import oidc_user

pytestmark = pytest.mark.integration
ARTIFACTS = REPO / "test-artifacts"

PW = "Provider-Pass-1"
USERS = [
    oidc_user("u-jane", "Jane.Doe@uni.test", PW, ["ml-class", "gpu-users"]),
    oidc_user("u-bob", "bob@uni.test", PW, ["visitors"]),
    oidc_user("u-staff", "Staff.Member@uni.test", PW, ["ml-staff"]),
    oidc_user("u-carol", "carol@uni.test", PW, ["ml-class", "restricted"]),
    oidc_user("u-jane2", "jane.doe@other.test", PW, ["ml-class"]),  # -> jane_doe too
    oidc_user("u-sam", "sam@uni.test", PW, ["ml-class"]),  # a native account "sam" exists
]


def oidc_hub(make_hub, oidc_provider, client_secret: str | None = None, **settings):
    """A hub whose sign-in is the provider (its callback registered there), not started yet."""
    hub = make_hub()
    callback = f"{hub.url}/hub/oauth_callback"
    provider = oidc_provider([callback], USERS)
    hub.configure(
        **{
            "auth.method": "oidc",
            "auth.oidc.issuer": provider.issuer,
            "auth.oidc.client_id": provider.client_id,
            "auth.oidc.callback_url": callback,
            "auth.oidc.allowed_groups": '["ml-class", "ml-staff"]',
            "auth.oidc.admin_groups": '["ml-staff"]',
            "auth.oidc.login_service": "Uni Test Login",
            **settings,
        }
    )
    mlw(
        hub.site,
        "auth",
        "secret",
        "set",
        "oidc",
        input=(client_secret or provider.client_secret) + "\n",
    )
    return hub, provider


def http_sign_in(hub, username: str, password: str) -> tuple[httpx.Client, httpx.Response]:
    """The same flow as a browser, over HTTP: the hub's oauth_login -> the provider's form ->
    its redirect back to the hub's callback -> wherever the hub sends the user next."""
    client = httpx.Client(follow_redirects=True, timeout=60)
    page = client.get(f"{hub.url}/hub/oauth_login?next=%2Fhub%2Fhome")
    assert page.status_code == 200 and 'name="password"' in page.text, page.text[:2000]
    action = re.search(r'<form method="POST" action="([^"]+)"', page.text).group(1)
    request_id = re.search(r'name="id" value="([^"]+)"', page.text).group(1)
    final = client.post(
        urljoin(str(page.url), action),
        data={"id": request_id, "username": username, "password": password},
    )
    return client, final


def sign_in_tracebacks(log: str) -> list[str]:
    """Tracebacks in the hub log from sign-in code (JupyterHub logs one for any refused spawn,
    such as the quota's 403, which is not what these tests look at)."""
    found = []
    for chunk in log.split("Traceback (most recent call last):")[1:]:
        head = chunk[:4000]
        if any(part in head for part in ("idp.py", "oauthenticator", "oauth2.py", "idp_links")):
            found.append(head)
    return found


def hub_user(hub, name: str) -> httpx.Response:
    token = (hub.site / "secrets" / "cli_api_token").read_text().strip()
    return httpx.get(
        f"{hub.url}/hub/api/users/{name}", headers={"Authorization": f"token {token}"}, timeout=30
    )


def test_sign_in_through_the_provider_opens_jupyterlab_with_groups_admins_and_quotas(
    make_hub, oidc_provider, chromium
):
    hub, provider = oidc_hub(
        make_hub, oidc_provider, **{"usage.quotas.groups": "{restricted: {max_servers: 0}}"}
    )
    mlw(hub.site, "user", "add", "sam", "--password-stdin", input="Native-Sam-Pass-1\n")
    hub.start()

    # Jane: hub -> the provider's login form -> back -> JupyterLab, as the account jane_doe
    page = chromium()
    page.goto(f"{hub.url}/hub/login")  # then /hub/spawn starts her server
    page.click("text=Sign in with Uni Test Login")
    page.wait_for_selector("input#password", timeout=30_000)
    assert page.url.startswith(provider.issuer)  # the provider's own form, not the hub's
    page.fill("#username", "Jane.Doe@uni.test")
    page.fill("#password", PW)
    page.click("button[type=submit]")
    page.wait_for_url(
        lambda url: "/user/jane_doe/lab" in url and "/hub/" not in url,
        timeout=120_000,
        wait_until="commit",
    )
    # JupyterLab's own page, served by her server through the proxy (its config names the app)
    config = page.locator("#jupyter-config-data")
    config.wait_for(state="attached", timeout=120_000)
    assert '"appName": "JupyterLab"' in config.text_content()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "auth-oidc-lab.png"))
    # her server runs as a system account made the same way as a native user's
    assert pwd.getpwnam(f"{hub.prefix}jane_doe")
    jane = hub_user(hub, "jane_doe").json()
    assert sorted(jane["groups"]) == ["gpu-users", "ml-class"] and jane["admin"] is False
    links = mlw(hub.site, "auth", "links").stdout
    assert "jane_doe\toidc\tJane.Doe@uni.test\tu-jane" in links

    # staff: an admin by the provider's group
    client, final = http_sign_in(hub, "Staff.Member@uni.test", PW)
    assert final.status_code == 200, final.text[:2000]
    assert hub_user(hub, "staff_member").json()["admin"] is True
    client.close()

    # Bob is in no allowed group: a page that says so, and no account
    outsider = chromium()
    outsider.goto(f"{hub.url}/hub/login")
    outsider.click("text=Sign in with Uni Test Login")
    outsider.fill("#username", "bob@uni.test")
    outsider.fill("#password", PW)
    outsider.click("button[type=submit]")
    outsider.wait_for_selector("text=admits only members of", timeout=30_000)
    assert "ml-class, ml-staff" in outsider.content()
    assert hub_user(hub, "bob").status_code == 404
    assert "bob" not in mlw(hub.site, "auth", "links").stdout

    # Carol's group "restricted" has a quota of no servers: refused at spawn, naming the group
    client, final = http_sign_in(hub, "carol@uni.test", PW)
    assert sorted(hub_user(hub, "carol").json()["groups"]) == ["ml-class", "restricted"]
    spawn = client.post(
        f"{hub.url}/hub/api/users/carol/server",
        headers={"X-XSRFToken": client.cookies.get("_xsrf", path="/hub/") or ""},
    )
    assert spawn.status_code == 403 and "usage.quotas.groups.restricted" in spawn.text, spawn.text
    client.close()

    # a second person whose name also gives jane_doe: refused, not merged into Jane's account
    client, final = http_sign_in(hub, "jane.doe@other.test", PW)
    assert final.status_code == 403 and "belongs to someone else" in final.text, final.text[:3000]
    client.close()
    # a name that gives an existing native account: refused too
    client, final = http_sign_in(hub, "sam@uni.test", PW)
    assert final.status_code == 403 and "already exists on this hub" in final.text
    client.close()
    # each refusal tells the admin what to run; the line may reach the log just after the 403
    hub.wait_log("auth unlink jane_doe")
    assert not sign_in_tracebacks(hub.wait_log("mlworkshop user remove sam"))


def test_wrong_client_secret_and_provider_down_give_pages_not_tracebacks(make_hub, oidc_provider):
    hub, provider = oidc_hub(make_hub, oidc_provider, client_secret="not-the-right-secret")
    hub.start()

    # the provider signs Jane in, then refuses the hub's secret at the token endpoint
    client, final = http_sign_in(hub, "Jane.Doe@uni.test", PW)
    assert final.status_code == 503, final.text[:3000]
    assert "did not accept this hub's credentials" in html.unescape(final.text)
    hub.wait_log("refused the hub's client credentials")
    hub.wait_log("mlworkshop auth secret set oidc")
    client.close()

    # the provider is down: the login page says so (503, no redirect anywhere, so no loop)
    provider.stop()
    response = httpx.get(f"{hub.url}/hub/oauth_login?next=%2Fhub%2Fhome", timeout=30)
    assert response.status_code == 503 and "location" not in response.headers
    assert "Uni Test Login (the sign-in service) is not answering" in response.text
    assert "Sign in with Uni Test Login" in response.text  # a button to try again later

    # back up: sign-in works again without a hub restart
    provider.start(client_secret="not-the-right-secret")
    client, final = http_sign_in(hub, "Jane.Doe@uni.test", PW)
    assert final.status_code == 200 and str(final.url).endswith("/hub/home"), final.text[:2000]

    # Jane is taken out of every allowed group at the provider: before her next server start the
    # hub asks the provider again (refresh_pre_spawn), her sign-in no longer holds, and signing
    # in again is refused
    provider.users["u-jane"]["Groups"] = ["visitors"]
    provider.stop()
    provider.start()
    spawn = client.post(
        f"{hub.url}/hub/api/users/jane_doe/server",
        headers={"X-XSRFToken": client.cookies.get("_xsrf", path="/hub/") or ""},
    )
    assert spawn.status_code == 403, spawn.text
    assert not hub_user(hub, "jane_doe").json()["servers"]
    client.close()
    client, final = http_sign_in(hub, "Jane.Doe@uni.test", PW)
    assert final.status_code == 403 and "admits only members of" in final.text, final.text[:2000]
    client.close()
    assert not sign_in_tracebacks(hub.log())
