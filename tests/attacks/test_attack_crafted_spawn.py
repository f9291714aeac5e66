"""A student crafts a spawn request the spawn page would never send (issue 11, item 7b).

`{"profile": "gpu-8"}` posted to the hub's API as the student is refused, in words. JupyterHub
saves the options of every request and re-uses them when a server is started without a form
(Home → Start My Server on a hub with nothing to choose), so the refused choice used to come back
on every start: the student's spawn page answered 400 until they posted a valid profile by hand.
"""

from __future__ import annotations

import json
import subprocess

from tests.integration.hubctl import mlw

PASSWORD = "Mallory-Pass-42"

CRAFTED_POST = """
import json, sys, urllib.error, urllib.request
url, token = sys.argv[1], sys.stdin.readline().strip()
request = urllib.request.Request(url, data=json.dumps({"profile": "gpu-8"}).encode(), method="POST",
                                 headers={"Authorization": "token " + token, "Content-Type": "application/json"})
try:
    response = urllib.request.urlopen(request, timeout=60)
    print(json.dumps({"status": response.status, "body": response.read().decode()}))
except urllib.error.HTTPError as error:
    print(json.dumps({"status": error.code, "body": error.read().decode()}))
"""


def as_student(account: str, url: str, token: str) -> dict:
    """The crafted POST, sent by a process of the student's own account with her own token."""
    done = subprocess.run(
        ["runuser", "-u", account, "--", "/usr/bin/python3", "-I", "-c", CRAFTED_POST, url],
        input=token + "\n",
        capture_output=True,
        text=True,
        cwd="/",
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_refused_crafted_spawn_does_not_break_the_spawn_page(make_hub):
    hub = make_hub(**{"accelerators.detect": "false"})  # a CPU-only hub: the spawn page has no form
    mlw(hub.site, "user", "add", "mallory", "--password-stdin", input=PASSWORD + "\n")
    hub.start()
    mallory = hub.browser()
    assert mallory.login("mallory", PASSWORD).status_code == 302
    mallory.start_server("mallory")  # her system account exists from her first start
    token = mallory.new_token("mallory")
    mallory.stop_server("mallory")

    crafted = as_student(hub.prefix + "mallory", f"{hub.url}/hub/api/users/mallory/server", token)
    assert crafted["status"] == 400, crafted
    reason = json.loads(crafted["body"])["message"]
    assert reason.startswith("The server option 'gpu-8' is not available to you."), reason
    assert "cpu (CPU only)" in reason and "HTTP" not in reason, reason
    model = mallory.api("GET", "/users/mallory").json()
    assert not model["servers"] and not model["pending"], model

    # Home → Start My Server: the refused choice is not re-used, a CPU-only server starts
    page = mallory.client.get("/hub/spawn/mallory")
    assert page.status_code == 200, page.text[-2000:]
    server = mallory.wait_ready("mallory")
    assert server["user_options"].get("profile") in (None, "cpu"), server
