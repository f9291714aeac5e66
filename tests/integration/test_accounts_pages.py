"""The accounts pages (hub/auth.py AccountsHandler, AccountActionHandler) are granted by scope
(`admin:users`, JupyterHub's @needs_scope), as the hub's own pages are: admins have it through
their role, a teaching assistant can be given it by a role, and a student is refused."""

from __future__ import annotations

import pytest

from .hubctl import mlw

pytestmark = pytest.mark.integration

PASSWORDS = {
    "teacher": "Teach-the-class-1",
    "ta": "Assist-the-class-2",
    "alice": "alice-Secret-42",
    "bob": "bob-Secret-42x",
}


def test_accounts_pages_need_the_admin_users_scope(make_hub):
    hub = make_hub()
    mlw(
        hub.site,
        "user",
        "add",
        "teacher",
        "--admin",
        "--password-stdin",
        input=PASSWORDS["teacher"] + "\n",
    )
    for name in ("ta", "alice"):
        mlw(hub.site, "user", "add", name, "--password-stdin", input=PASSWORDS[name] + "\n")
    extra = hub.site / "jupyterhub_config.d"
    extra.mkdir(exist_ok=True)
    (extra / "roles.py").write_text(  # the escape hatch: a role for a teaching assistant
        "c.JupyterHub.load_roles = list(c.JupyterHub.load_roles) + [{'name': 'account-managers', "
        "'scopes': ['admin:users'], 'users': ['ta']}]\n",
        encoding="utf-8",
    )
    hub.start()
    hub.browser().signup("bob", PASSWORDS["bob"])

    browsers = {}
    for name in ("teacher", "ta", "alice"):
        browsers[name] = hub.browser()
        assert browsers[name].login(name, PASSWORDS[name]).status_code == 302

    # a student: refused, and bob stays unapproved
    alice = browsers["alice"]
    assert alice.client.get("/hub/accounts").status_code == 403
    xsrf = alice.client.cookies.get("_xsrf", path="/hub/")
    assert alice.client.post("/hub/accounts/bob/approve", data={"_xsrf": xsrf}).status_code == 403
    assert "waiting for approval" in browsers["teacher"].client.get("/hub/accounts").text

    # the navigation bar links the page for those who may open it
    link = 'href="/hub/accounts"'
    assert link not in alice.client.get("/hub/home").text
    assert link in browsers["teacher"].client.get("/hub/home").text

    # the assistant (not an admin, but granted admin:users) sees the page and approves bob
    ta = browsers["ta"]
    assert link in ta.client.get("/hub/home").text
    assert ta.api("GET", "/users/ta").json()["admin"] is False
    page = ta.client.get("/hub/accounts")
    assert page.status_code == 200 and "bob" in page.text
    xsrf = ta.client.cookies.get("_xsrf", path="/hub/")
    assert "Approved bob" in ta.client.post("/hub/accounts/bob/approve", data={"_xsrf": xsrf}).text
    assert hub.browser().login("bob", PASSWORDS["bob"]).status_code == 302
