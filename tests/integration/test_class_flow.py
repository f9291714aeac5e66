"""The foundation's whole story on a real hub: admin from the CLI, student signup and approval,
JupyterLab through the proxy, the workspace's permissions, stop, restart. Run on SQLite and on
the machine's PostgreSQL.
"""

from __future__ import annotations

import os

import pytest

from .hubctl import Server, mlw

pytestmark = pytest.mark.integration

ADMIN_PW = "Teach-the-class-1"
ALICE_PW = "alice-Secret-42"
BOB_PW = "bob-Secret-42x"


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_settings(request):
    if request.param == "sqlite":
        return {}
    return {"hub.db_url": request.getfixturevalue("postgres_url")}


async def test_class_flow(hub_settings, make_hub):  # hub stops before its database is dropped
    hub = make_hub(**hub_settings)
    mlw(hub.site, "user", "add", "teacher", "--admin", "--password-stdin", input=ADMIN_PW + "\n")
    hub.start()

    # the admin created by the CLI logs in through the form
    admin = hub.browser()
    assert admin.login("teacher", ADMIN_PW).status_code == 302
    assert admin.logged_in_as() == "teacher"
    assert admin.api("GET", "/users/teacher").json()["admin"] is True

    # a student signs up and cannot log in before approval
    alice = hub.browser()
    page = alice.signup("alice", ALICE_PW)
    assert "must approve" in page.text
    refused = alice.login("alice", ALICE_PW)
    assert refused.status_code == 403 and "waiting for an administrator" in refused.text
    assert alice.logged_in_as() is None

    # a signup waiting for approval is no hub user yet; approved with the CLI (hub running), she is
    # one at once, with the user role (groups can be set before her first login), and logs in
    assert admin.api("GET", "/users/alice").status_code == 404
    mlw(hub.site, "user", "approve", "alice")
    assert admin.api("GET", "/users/alice").json()["roles"] == ["user"]
    assert alice.login("alice", ALICE_PW).status_code == 302
    assert alice.logged_in_as() == "alice"

    # a second student is approved on the admin's accounts page
    bob = hub.browser()
    bob.signup("bob", BOB_PW)
    accounts = admin.client.get("/hub/accounts")
    assert "bob" in accounts.text and "waiting for approval" in accounts.text
    xsrf = admin.client.cookies.get("_xsrf", path="/hub/")
    approved = admin.client.post("/hub/accounts/bob/approve", data={"_xsrf": xsrf})
    assert "Approved bob" in approved.text
    assert admin.api("GET", "/users/bob").json()["roles"] == ["user"]
    assert bob.login("bob", BOB_PW).status_code == 302

    # alice's JupyterLab starts and answers through the proxy (the browser's OAuth dance too)
    alice.start_server("alice")
    lab = alice.client.get("/user/alice/lab")
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    a = Server(hub.url, "alice", alice.new_token("alice"))
    listing = {item["name"] for item in a.contents("GET", "").json()["content"]}
    assert {"work", "lessons", "datasets", "models", "submissions"} <= listing

    # work/ and submissions/ are hers; lessons/ is read-only for real
    assert a.write_text("work/notes.py", "print('mine')").status_code == 201
    assert a.write_text("submissions/homework.txt", "alice's answer").status_code == 201
    assert a.write_text("lessons/graffiti.txt", "x").status_code in (403, 500)
    assert not (hub.site / "content" / "lessons" / "graffiti.txt").exists()

    bob.start_server("bob")
    b = Server(hub.url, "bob", bob.new_token("bob"))
    assert b.write_text("work/secret.txt", "bob's secret").status_code == 201

    if os.geteuid() == 0:
        # bob's files are out of alice's reach, from inside her own kernel
        probe = f"""
import os
for p in ['{hub.site}/users/bob/work/secret.txt', '{hub.site}/submissions/bob']:
    try:
        open(p).read() if p.endswith('.txt') else os.listdir(p)
        print('READ', p)
    except PermissionError:
        print('DENIED', p)
print('UID', os.getuid())
"""
        out = await a.run_code(probe)
        assert "READ" not in out and out.count("DENIED") == 2, out
        assert "UID 0" not in out, "a student's server must not run as root"
    # and alice's token does not open bob's server
    assert a.client.get("/user/bob/api/contents/work").status_code in (403, 404)

    # the admin reads every submission from their own server
    admin.start_server("teacher")
    t = Server(hub.url, "teacher", admin.new_token("teacher"))
    handed_in = t.read_text("submissions/alice/homework.txt")
    assert handed_in.status_code == 200 and handed_in.json()["content"] == "alice's answer"
    # the admin edits shared content (a new file, and a lesson init copied in); students read it
    assert t.write_text("lessons/announcement.md", "Quiz on Friday").status_code == 201
    lessons = [
        item
        for item in t.contents("GET", "lessons").json()["content"]
        if item["type"] == "directory"
    ]
    if lessons:
        first = lessons[0]["path"]
        notebook = next(
            item
            for item in t.contents("GET", first).json()["content"]
            if item["name"].endswith(".ipynb")
        )
        model = t.contents("GET", notebook["path"]).json()
        assert (
            t.contents(
                "PUT",
                notebook["path"],
                json={"type": "notebook", "format": "json", "content": model["content"]},
            ).status_code
            == 200
        )
    assert b.read_text("lessons/announcement.md").json()["content"] == "Quiz on Friday"

    # stop works
    alice.stop_server("alice")
    assert a.contents("GET", "work").status_code in (404, 503, 424, 302)

    # failed logins lock bob out (from this address) and the lock survives a restart
    mallory = hub.browser()
    for _ in range(5):
        mallory.login("bob", "wrong-password")
    locked = mallory.login("bob", BOB_PW)
    assert locked.status_code == 403 and "Too many failed logins" in locked.text

    assert hub.stop() < 15
    # approved while the hub is down: a hub user (role `user`) as soon as it is back, before logging in
    mlw(hub.site, "user", "add", "carol", "--password-stdin", input="Carol-pass-42\n")
    hub.start()
    assert admin.api("GET", "/users/carol").json()["roles"] == ["user"]
    assert "Too many failed logins" in hub.browser().login("bob", BOB_PW).text
    # accounts survived, and bob's server kept running across the restart
    alice2 = hub.browser()
    assert alice2.login("alice", ALICE_PW).status_code == 302
    assert b.read_text("work/secret.txt").json()["content"] == "bob's secret"
