"""`mlworkshop user ...` with the hub running: the commands go through the hub's REST API with
the CLI's own token, and must be able to do what the README tells an admin to do first
(issue 11, item 7c: `user add NAME --admin` right after `make up`)."""

from __future__ import annotations

import pytest

from tests.integration.conftest import make_hub  # noqa: F401  (the real-hub factory, a fixture)

from .clirun import mlw

pytestmark = pytest.mark.integration

ADMIN_PW = "Teach-the-class-1"
STUDENT_PW = "Student-Pass-42"


def hub_admin_flag(hub, name: str, password: str) -> bool:
    browser = hub.browser()
    assert browser.login(name, password).status_code == 302
    return browser.api("GET", f"/users/{name}").json()["admin"]


def test_add_admin_and_promote_with_the_hub_running(make_hub):
    hub = make_hub()
    hub.start()
    added = mlw(
        hub.site, "user", "add", "teacher", "--admin", "--password-stdin", input=ADMIN_PW + "\n"
    )
    assert added.returncode == 0 and "Added admin teacher" in added.stdout, added
    assert hub_admin_flag(hub, "teacher", ADMIN_PW) is True

    student = mlw(hub.site, "user", "add", "tara", "--password-stdin", input=STUDENT_PW + "\n")
    assert student.returncode == 0, student
    assert hub_admin_flag(hub, "tara", STUDENT_PW) is False
    promoted = mlw(hub.site, "user", "promote", "tara")
    assert promoted.returncode == 0 and "tara is now an administrator" in promoted.stdout, promoted
    assert hub_admin_flag(hub, "tara", STUDENT_PW) is True
    demoted = mlw(hub.site, "user", "demote", "tara")
    assert demoted.returncode == 0, demoted
    assert hub_admin_flag(hub, "tara", STUDENT_PW) is False


def test_the_cli_stays_admin_across_a_hub_restart(make_hub):
    """The CLI's admin flag is set when its service is created and on every later start."""
    hub = make_hub()
    hub.start()
    hub.stop()
    hub.start()
    added = mlw(
        hub.site, "user", "add", "teacher", "--admin", "--password-stdin", input=ADMIN_PW + "\n"
    )
    assert added.returncode == 0, added
    assert hub_admin_flag(hub, "teacher", ADMIN_PW) is True
