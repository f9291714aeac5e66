"""auth.method ldap against a real OpenLDAP (Debian's slapd, started per test by conftest.slapd)
and a real hub: login through the hub's own form in Chromium, directory groups as JupyterHub
groups and admins, refusals with a reason, and a message when the directory is unreachable."""

from __future__ import annotations

import json
import pwd

import httpx
import pytest

from tests.integration.hubctl import REPO, mlw

pytestmark = pytest.mark.integration
ARTIFACTS = REPO / "test-artifacts"

PEOPLE = {"jane.doe": "Jane-Ldap-Pass-1", "bob": "Bob-Ldap-Pass-1", "boss": "Boss-Ldap-Pass-1"}
GROUPS = {"ml-class": ["jane.doe"], "ml-staff": ["boss"], "gpu-users": ["jane.doe"]}


def ldap_hub(make_hub, directory):
    hub = make_hub()
    hub.configure(
        **{
            "auth.method": "ldap",
            "auth.ldap.server_url": directory.url,
            "auth.ldap.tls": "none",  # a directory on this machine, over loopback
            "auth.ldap.bind_dn_template": json.dumps(["uid={username},ou=people,dc=mlw,dc=test"]),
            "auth.ldap.allowed_groups": json.dumps([directory.group_dn("ml-class")]),
            "auth.ldap.admin_groups": json.dumps([directory.group_dn("ml-staff")]),
            "auth.ldap.groups": json.dumps([directory.group_dn("gpu-users")]),
        }
    )
    return hub


def form_login(hub, username: str, password: str) -> tuple[httpx.Client, httpx.Response]:
    from tests.integration.hubctl import Browser

    browser = Browser(hub.url)
    return browser, browser.login(username, password)


def hub_user(hub, name: str) -> httpx.Response:
    token = (hub.site / "secrets" / "cli_api_token").read_text().strip()
    return httpx.get(
        f"{hub.url}/hub/api/users/{name}", headers={"Authorization": f"token {token}"}, timeout=30
    )


def test_ldap_login_in_the_hub_form_groups_admins_and_refusals(make_hub, slapd, chromium):
    directory = slapd(PEOPLE, GROUPS)
    hub = ldap_hub(make_hub, directory)
    mlw(hub.site, "user", "add", "boss", "--password-stdin", input="Native-Boss-Pass-1\n")
    hub.start()

    page = chromium()
    page.goto(f"{hub.url}/hub/login")  # then /hub/spawn starts her server
    page.fill("input[name=username]", "Jane.Doe")  # as people type it: case does not matter
    page.fill("input[name=password]", PEOPLE["jane.doe"])
    page.click("input[type=submit]")
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
    page.screenshot(path=str(ARTIFACTS / "auth-ldap-lab.png"))
    assert pwd.getpwnam(f"{hub.prefix}jane_doe")
    jane = hub_user(hub, "jane_doe").json()
    assert sorted(jane["groups"]) == ["gpu-users", "ml-class"] and not jane["admin"]

    # a wrong password: the form again, no account
    browser, response = form_login(hub, "bob", "wrong-password")
    assert response.status_code == 403 and "Invalid username or password" in response.text
    # Bob binds, but is in no allowed group: the form says which groups admit
    browser, response = form_login(hub, "bob", PEOPLE["bob"])
    assert response.status_code == 403 and "admits only members of: ml-class" in response.text
    assert hub_user(hub, "bob").status_code == 404
    # boss is a native account here already: refused, not merged, the admin told how to settle it
    browser, response = form_login(hub, "boss", PEOPLE["boss"])
    assert response.status_code == 403 and "already exists on this hub" in response.text
    hub.wait_log("mlworkshop user remove boss")

    # the directory goes away: the form says so, the hub log says what to check
    directory.stop()
    browser, response = form_login(hub, "jane.doe", PEOPLE["jane.doe"])
    assert response.status_code == 503, response.text[:2000]
    assert "directory server that checks passwords is not answering" in response.text
    assert 'name="password"' in response.text  # the login form itself, to try again
    hub.wait_log(f"The LDAP server 127.0.0.1:{directory.port} cannot be used")
    assert "Traceback" not in hub.log()


def test_an_ldap_admin_group_makes_admins_and_search_base_lookup(make_hub, slapd):
    directory = slapd(PEOPLE, GROUPS)
    hub = make_hub()
    hub.configure(
        **{
            "auth.method": "ldap",
            "auth.ldap.server_url": directory.url,
            "auth.ldap.tls": "none",
            "auth.ldap.search_base": "ou=people,dc=mlw,dc=test",  # looked up, anonymously
            "auth.ldap.allowed_groups": json.dumps([directory.group_dn("ml-class")]),
            "auth.ldap.admin_groups": json.dumps([directory.group_dn("ml-staff")]),
        }
    )
    hub.start()
    browser, response = form_login(hub, "boss", PEOPLE["boss"])
    assert response.status_code == 302, response.text[:2000]  # admitted as an admin
    assert hub_user(hub, "boss").json()["admin"] is True
    assert "boss\tldap\tboss\tboss" in mlw(hub.site, "auth", "links").stdout
