"""Native accounts and JupyterHub's admin page agree, both ways (issue 16; hub/account_sync.py).

A real root hub. The admin page's "Add Users" is JupyterHub's POST /hub/api/users, made here with
an admin's browser session, exactly as the page makes it (the Chromium run of the page itself is
test_admin_page_browser.py)."""

from __future__ import annotations

import pwd
import re

import httpx
import pytest

from mlworkshop.accounts.store import AccountStore
from mlworkshop.config import load_config
from mlworkshop.site import Site

from .hubctl import mlw

pytestmark = pytest.mark.integration

TEACHER_PW = "Teach-the-class-1"
BOB_PW = "Bobs-own-Secret-9"


def store(hub) -> AccountStore:
    return AccountStore(Site(hub.site).db_url(load_config(hub.site, {})))


def teacher(hub):
    mlw(hub.site, "user", "add", "teacher", "--admin", "--password-stdin", input=TEACHER_PW + "\n")
    if hub.proc is None or hub.proc.poll() is not None:
        hub.start()
    browser = hub.browser()
    assert browser.login("teacher", TEACHER_PW).status_code == 302
    return browser


def one_time_link(admin, name: str) -> str:
    page = admin.client.get("/hub/accounts")
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    made = admin.client.post(f"/hub/accounts/{name}/link", data={"_xsrf": xsrf})
    assert made.status_code == 200, made.text
    assert made.headers.get("Cache-Control") == "no-store"
    return re.search(r'id="one-time-link" readonly value="([^"]+)"', made.text).group(1)


def set_password(hub, link: str, password: str) -> httpx.Response:
    person = hub.browser()
    path = link.split(f":{hub.port}", 1)[1].replace("&amp;", "&")
    form = person.client.get(path)
    assert form.status_code == 200, form.text
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', form.text).group(1)
    token = re.search(r'name="token" value="([^"]+)"', form.text).group(1)
    return person.client.post(
        "/hub/set-password",
        data={
            "_xsrf": xsrf,
            "token": token,
            "password": password,
            "password_confirm": password,
        },
    )


def test_users_added_on_the_admin_page_get_an_account_and_a_one_time_link(make_hub):
    hub = make_hub()
    admin = teacher(hub)
    added = admin.api("POST", "/users", json={"usernames": ["bob", "carol"], "admin": False})
    assert added.status_code == 201, added.text

    # approved accounts, without a password: nobody can log in as them yet
    accounts = {a.username: a for a in store(hub).list()}
    for name in ("bob", "carol"):
        assert accounts[name].approved and not accounts[name].has_password
    assert hub.browser().login("bob", "").status_code != 302
    page = admin.client.get("/hub/accounts")
    assert 'data-user="bob"' in page.text and "no password yet" in page.text

    link = one_time_link(admin, "bob")
    assert f"127.0.0.1:{hub.port}/hub/set-password?token=" in link or "/hub/set-password" in link
    token = link.rsplit("token=", 1)[1]
    assert token not in hub.log()  # the link is shown to the admin, never logged
    done = set_password(hub, link, BOB_PW)
    assert done.status_code == 200 and "Your password is set" in done.text, done.text
    assert hub.browser().login("bob", BOB_PW).status_code == 302

    # the link is spent
    again = hub.browser().client.get(link.split(f":{hub.port}", 1)[1])
    assert again.status_code == 404 and "has been used, has expired or is wrong" in again.text

    # a student cannot make links
    bob = hub.browser()
    bob.login("bob", BOB_PW)
    xsrf = bob.client.cookies.get("_xsrf", path="/hub/")
    assert bob.client.post("/hub/accounts/carol/link", data={"_xsrf": xsrf}).status_code == 403


def test_the_accounts_page_lists_hub_users_without_an_account(make_hub):
    hub = make_hub()
    admin = teacher(hub)
    assert admin.api("POST", "/users/dave", json={}).status_code == 201
    store(hub).delete("dave")  # a hub user whose account is gone (made before this release)
    page = admin.client.get("/hub/accounts")
    assert 'data-user="dave"' in page.text and "hub user without an account" in page.text
    link = one_time_link(admin, "dave")  # gives the account too
    assert store(hub).get("dave").approved
    assert set_password(hub, link, "Daves-own-Secret-3").status_code == 200
    assert hub.browser().login("dave", "Daves-own-Secret-3").status_code == 302

    # and the hub makes the account itself at its next start
    assert admin.api("POST", "/users/erin", json={}).status_code == 201
    store(hub).delete("erin")
    hub.stop()
    hub.start()
    assert store(hub).get("erin") is not None and not store(hub).get("erin").has_password


def test_authorize_leads_to_the_accounts_page(make_hub):
    hub = make_hub()
    admin = teacher(hub)
    for path in ("/hub/authorize", "/hub/authorize/bob"):
        page = admin.client.get(path)
        assert page.status_code == 200 and str(page.url).endswith("/hub/accounts"), page.url
        assert 'id="accounts-table"' in page.text


def test_deleting_on_the_admin_page_removes_the_account_and_keeps_the_files(make_hub):
    hub = make_hub()
    admin = teacher(hub)
    mlw(hub.site, "user", "add", "frank", "--password-stdin", input="Franks-Secret-77\n")
    frank = hub.browser()
    assert frank.login("frank", "Franks-Secret-77").status_code == 302
    frank.start_server("frank")
    work = hub.site / "users" / "frank" / "work"
    (work / "notes.txt").write_text("keep me")
    assert admin.api("DELETE", "/users/frank").status_code == 204
    assert store(hub).get("frank") is None
    assert "frank" not in mlw(hub.site, "user", "list").stdout
    with pytest.raises(KeyError):
        pwd.getpwnam(hub.prefix + "frank")
    assert (work / "notes.txt").read_text() == "keep me"


def test_admin_set_on_the_admin_page_survives_the_next_login(make_hub):
    """The Admin page's "admin" checkbox is JupyterHub's PATCH /hub/api/users/NAME. Before the
    fix the authenticator answered each login with the account's own (older) flag, and JupyterHub
    applied it: bob, made admin on the page, was a student again after logging in once more."""
    hub = make_hub()
    mlw(hub.site, "user", "add", "bob", "--password-stdin", input=BOB_PW + "\n")
    admin = teacher(hub)
    bob = hub.browser()
    assert bob.login("bob", BOB_PW).status_code == 302  # a hub user now
    assert bob.client.get("/hub/home").status_code == 200  # and one the hub has seen

    for made_admin in (True, False):
        changed = admin.api("PATCH", "/users/bob", json={"admin": made_admin})
        assert changed.status_code == 200, changed.text
        assert hub.browser().login("bob", BOB_PW).status_code == 302  # bob logs in again
        assert admin.api("GET", "/users/bob").json()["admin"] is made_admin
        assert store(hub).get("bob").is_admin is made_admin  # the Accounts page and CLI agree
