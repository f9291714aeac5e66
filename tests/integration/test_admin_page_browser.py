"""JupyterHub's Admin page in Chromium (issue 16): the admin clicks "Add Users", makes the new
user's one-time link on the Accounts page; the new user opens it in their own browser, sets a
password and signs in."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from .hubctl import REPO, mlw

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
ARTIFACTS = REPO / "test-artifacts"
TEACHER_PW = "Teach-the-class-1"
NEW_PW = "Bobs-own-Secret-9"


def sign_in(page, base: str, name: str, password: str) -> None:
    page.goto(base + "/hub/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("input[type=submit], button[type=submit]")


def test_add_users_on_the_admin_page_then_a_one_time_link(make_hub):
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    hub = make_hub()
    mlw(hub.site, "user", "add", "teacher", "--admin", "--password-stdin", input=TEACHER_PW + "\n")
    hub.start()
    base = hub.url
    home = Path(tempfile.mkdtemp(prefix="mlw-chromium-"))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM,
                args=ARGS,
                headless=True,
                env={**os.environ, "HOME": str(home)},
            )
            admin = browser.new_context().new_page()
            person = browser.new_context().new_page()  # the new user's own browser
            try:
                sign_in(admin, base, "teacher", TEACHER_PW)
                # signed in: the hub's pages, or already the teacher's own lab (a forked server
                # starts in under a second, before the spawn page's own load completes)
                admin.wait_for_url(
                    lambda url: "/hub/" in url or "/user/teacher/" in url, timeout=60_000
                )
                admin.goto(base + "/hub/admin")
                admin.click(".add-users-button", timeout=60_000)
                admin.fill("#add-user-textarea", "bob")
                admin.click("[data-testid=submit]")
                admin.locator("[data-testid=user-row-name]", has_text="bob").wait_for(
                    timeout=60_000
                )

                admin.goto(base + "/hub/accounts")
                admin.click("#accounts-links-table tr[data-user=bob] button[type=submit]")
                link = admin.locator("#one-time-link").input_value(timeout=30_000)
                assert "/hub/set-password?token=" in link, link

                person.goto(link.replace("<this machine>", "127.0.0.1"))
                person.fill("#set_password", NEW_PW)
                person.fill("#set_password_confirm", NEW_PW)
                person.click("#set-password-submit")
                person.locator("#set-password-message").wait_for(timeout=30_000)
                person.click("#set-password-login")
                person.fill("input[name=username]", "bob")
                person.fill("input[name=password]", NEW_PW)
                person.click("input[type=submit], button[type=submit]")
                person.wait_for_url("**/user/bob/**", timeout=150_000)  # JupyterLab opens
                who = person.request.get(base + "/hub/api/user")
                assert who.ok and who.json()["name"] == "bob", who.text()
            finally:
                ARTIFACTS.mkdir(exist_ok=True)
                admin.screenshot(path=str(ARTIFACTS / "admin-add-users.png"))
                person.screenshot(path=str(ARTIFACTS / "admin-new-user.png"))
                browser.close()
    finally:
        shutil.rmtree(home, ignore_errors=True)
