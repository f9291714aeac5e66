"""Issue 11, item 3: a local student cannot get around the login lockout, or lock someone else
out, by talking to the hub's internal port directly with an X-Forwarded-For of their choice.

The attack runs as a real student account (`runuser`) against a real root hub: it POSTs the login
form to 127.0.0.1:<hub.internal_port> (the port servers and the proxy use), rotating
X-Forwarded-For to get a fresh lockout counter for every guess, then sends the proxy's own
address (127.0.0.1) to lock the owner out. Through the proxy, lockouts still work.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap

import httpx

from mlworkshop.config.model import ROOT_INTERNAL_PORT
from tests.integration.hubctl import mlw

OWNER_PW = "Owner-of-the-lab-7"
BOB_PW = "bob-Secret-42x"
ATTEMPTS = 3

# Runs as the student: every guess at the owner's password goes straight to the hub's internal
# port with a forged X-Forwarded-For; prints what the hub answered to each.
ATTACK = textwrap.dedent("""
    import json, re, sys
    import httpx

    base, owner, password, attempts = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

    def guess(word, forwarded):
        with httpx.Client(base_url=base, timeout=60) as client:
            headers = {"X-Forwarded-For": forwarded}
            page = client.get("/hub/login", headers=headers)
            match = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
            data = {"username": owner, "password": word}
            if match:
                data["_xsrf"] = match.group(1)
            answer = client.post("/hub/login", data=data, headers=headers, follow_redirects=False)
            logged_in = answer.status_code == 302 and any(
                name.startswith("jupyterhub-hub-login") for name in client.cookies.keys())
            return {"status": answer.status_code, "logged_in": logged_in,
                    "says_why": "Sign in through the hub" in answer.text}

    results = []
    # 1. more guesses than the lockout allows, each from a "different" address; the last is right
    for i in range(attempts * 4):
        results.append(guess(f"wrong-{i}", f"10.66.{i // 250}.{i % 250 + 1}"))
    results.append(guess(password, "10.66.9.9"))
    # 2. the proxy's own address: the owner's logins through the proxy come from there
    for i in range(attempts + 1):
        results.append(guess(f"wrong-again-{i}", "127.0.0.1"))
    # 3. signup past the proxy (an account made without anyone seeing where from)
    with httpx.Client(base_url=base, timeout=60) as client:
        answer = client.post("/hub/signup", data={"username": "sneaky", "password": "Sneaky-pass-99",
                                                  "password_confirm": "Sneaky-pass-99"})
        results.append({"status": answer.status_code, "logged_in": False,
                        "says_why": "Sign in through the hub" in answer.text})
    print(json.dumps(results))
""")


def _failure_rows(hub) -> int:
    db = sqlite3.connect(hub.site / "state" / "jupyterhub.sqlite")
    try:
        return db.execute("SELECT COUNT(*) FROM mlw_login_failures").fetchone()[0]
    finally:
        db.close()


def test_no_lockout_bypass_or_owner_lockout_through_the_internal_port(make_hub):
    hub = make_hub(
        **{
            "auth.lockout_attempts": ATTEMPTS,
            "auth.admin_users": "[owner]",
            "culler.enabled": "false",
            "usage.enabled": "false",
        }
    )
    mlw(hub.site, "user", "add", "owner", "--admin", "--password-stdin", input=OWNER_PW + "\n")
    mlw(hub.site, "user", "add", "bob", "--password-stdin", input=BOB_PW + "\n")
    student = f"{hub.prefix}mallory"
    subprocess.run(
        ["useradd", "--no-create-home", "--user-group", "--shell", "/bin/bash", student], check=True
    )
    hub.start()
    rows_before = _failure_rows(hub)

    internal = f"http://127.0.0.1:{hub.internal_port or ROOT_INTERNAL_PORT}"
    attack = subprocess.run(
        [
            "runuser",
            "-u",
            student,
            "--",
            sys.executable,
            "-c",
            ATTACK,
            internal,
            "owner",
            OWNER_PW,
            str(ATTEMPTS),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
    )
    assert attack.returncode == 0, attack.stderr
    results = json.loads(attack.stdout)

    # no guess sent past the proxy logs in, not even the right one after a dozen wrong ones ...
    assert not any(r["logged_in"] for r in results), results
    # ... each is refused as not coming through the proxy, with the way to do it right
    assert all(r["status"] == 403 for r in results), results
    assert all(r["says_why"] for r in results), results
    # ... and none of them left a failure row (a spoofed address each) in the hub's database
    assert _failure_rows(hub) == rows_before

    assert "sneaky" not in mlw(hub.site, "user", "list").stdout

    # the owner still logs in through the proxy: the forged 127.0.0.1 guesses locked nothing
    owner = hub.browser()
    assert owner.login("owner", OWNER_PW).status_code == 302
    assert owner.logged_in_as() == "owner"

    # changing a password takes the current one: with the owner's own session cookie, but past the
    # proxy, it is refused as well; through the proxy it works
    form = {
        "_xsrf": owner.client.cookies.get("_xsrf", path="/hub/"),
        "current_password": "a-guess",
        "new_password": "Owner-new-pass-8",
        "new_password_confirm": "Owner-new-pass-8",
    }
    with httpx.Client(base_url=internal, cookies=owner.client.cookies, timeout=60) as direct:
        refused = direct.post("/hub/change-password", data=form)
    assert refused.status_code == 403 and "Sign in through the hub" in refused.text
    assert _failure_rows(hub) == rows_before
    changed = owner.client.post("/hub/change-password", data={**form, "current_password": OWNER_PW})
    assert changed.status_code == 200 and "Password changed." in changed.text

    # through the proxy, the lockout works as configured: ATTEMPTS wrong, then even the right one is refused
    bob = hub.browser()
    for i in range(ATTEMPTS):
        assert bob.login("bob", f"not-it-{i}").status_code in (200, 403)
    refused = bob.login("bob", BOB_PW)
    assert refused.status_code == 403 and "Too many failed logins" in refused.text
    assert bob.logged_in_as() is None
