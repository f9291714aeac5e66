"""`mlworkshop user import` against a real hub (issue 16): running, the roster's users are hub
users in their JupyterHub groups at once; stopped, the hub makes the memberships when it starts.
Re-importing moves a student between groups and keeps their password."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from mlworkshop.site import Site

from .hubctl import mlw

pytestmark = pytest.mark.integration

ROSTER = "username,display_name,group,email\nLi_Wei,Li Wei,ml101,li@uni.edu\nmaria,,ml102,\n"


def hub_groups(hub) -> dict[str, set[str]]:
    token = Site(hub.site).secret("cli_api_token")
    response = httpx.get(
        f"http://127.0.0.1:{hub.internal_port}/hub/api/groups",
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return {g["name"]: set(g["users"]) for g in response.json()}


def passwords(run) -> dict[str, str]:
    path = next(w for w in run.stdout.split() if w.endswith(".csv"))
    return {r["username"]: r["password"] for r in csv.DictReader(io.StringIO(open(path).read()))}


def test_import_with_the_hub_running_then_moving_a_student(make_hub, tmp_path):
    hub = make_hub()
    hub.start()
    roster = tmp_path / "class.csv"
    roster.write_text(ROSTER)
    run = mlw(hub.site, "user", "import", str(roster))
    assert "2 group change(s) made in the hub" in run.stdout, run.stdout
    groups = hub_groups(hub)
    assert groups["ml101"] == {"li_wei"} and groups["ml102"] == {"maria"}
    sheet = passwords(run)
    assert hub.browser().login("li_wei", sheet["li_wei"]).status_code == 302

    roster.write_text(ROSTER.replace("maria,,ml102", "maria,,ml101"))
    again = mlw(hub.site, "user", "import", str(roster))
    assert "0 new, 2 already there; 1 group change(s) made in the hub" in again.stdout
    groups = hub_groups(hub)
    assert groups["ml101"] == {"li_wei", "maria"} and "maria" not in groups.get("ml102", set())
    assert hub.browser().login("maria", sheet["maria"]).status_code == 302  # password kept


def test_import_with_the_hub_stopped_is_applied_when_it_starts(make_hub, tmp_path):
    hub = make_hub()
    roster = tmp_path / "class.csv"
    roster.write_text(ROSTER)
    run = mlw(hub.site, "user", "import", str(roster))
    assert "(the hub makes them when it starts)" in run.stdout, run.stdout
    hub.start()
    groups = hub_groups(hub)
    assert groups["ml101"] == {"li_wei"} and groups["ml102"] == {"maria"}
    hub.wait_log("Roster groups of li_wei: joined ml101")

    # moved while stopped again: out of the old group, into the new, at the next start
    hub.stop()
    roster.write_text(ROSTER.replace("maria,,ml102", "maria,,ml101"))
    mlw(hub.site, "user", "import", str(roster))
    hub.start()
    groups = hub_groups(hub)
    assert groups["ml101"] == {"li_wei", "maria"} and groups["ml102"] == set()
    assert hub.browser().login("maria", passwords(run)["maria"]).status_code == 302
