"""`mlworkshop user import` / `user export` / `user link` with the hub stopped: real subprocesses,
checked against the account store. (With the hub running: tests/integration/test_roster_hub.py.)"""

from __future__ import annotations

import csv
import io
import stat

from mlworkshop.accounts.store import AccountStore, LockoutPolicy, LoginOutcome
from mlworkshop.config import load_config
from mlworkshop.site import Site

from .clirun import mlw, mlw_here

POLICY = LockoutPolicy()
ROSTER = (
    "username,display_name,group,email\n"
    "Li_Wei,Li Wei,ml101,li@uni.edu\n"
    "zhang,Zhang San,ml101,\n"
    "maria,,ml102,maria@uni.edu\n"
)


def accounts(site) -> AccountStore:
    return AccountStore(Site(site).db_url(load_config(site, {})))


def sheet(run, suffix: str = ".csv") -> list[dict]:
    path = next(w for w in run.stdout.split() if w.endswith(suffix))
    return list(csv.DictReader(io.StringIO(open(path).read())))


def test_import_makes_approved_accounts_and_a_private_sheet(site, tmp_path):
    roster = tmp_path / "ml101.csv"
    roster.write_text(ROSTER)
    run = mlw(site, "user", "import", str(roster))
    assert run.returncode == 0, run
    assert "3 new, 0 already there; 3 group change(s) (the hub makes them when it starts)" in (
        run.stdout
    ), run
    rows = {r["username"]: r for r in sheet(run)}
    assert set(rows) == {"li_wei", "zhang", "maria"}
    for suffix in (".csv", ".html"):
        path = next(w for w in run.stdout.split() if w.endswith(suffix))
        assert stat.S_IMODE((tmp_path / path.split("/")[-1]).stat().st_mode) == 0o600
    store = accounts(site)
    for name, row in rows.items():
        assert store.check_login(name, row["password"], "1.2.3.4", POLICY).outcome is (
            LoginOutcome.OK
        )
    li = store.get("li_wei")
    assert (li.display_name, li.email, li.roster_group, li.groups_pending) == (
        "Li Wei",
        "li@uni.edu",
        "ml101",
        True,
    )
    assert rows["li_wei"]["password"] not in run.stdout  # on the sheet only


def test_reimport_moves_groups_and_keeps_passwords_unless_asked(site, tmp_path):
    roster = tmp_path / "ml101.csv"
    roster.write_text(ROSTER)
    first = {r["username"]: r["password"] for r in sheet(mlw(site, "user", "import", str(roster)))}
    roster.write_text(ROSTER.replace("maria,,ml102", "maria,,ml101"))
    again = mlw(site, "user", "import", str(roster), "--sheet", str(tmp_path / "again"))
    assert again.returncode == 0, again
    assert "0 new, 3 already there; 1 group change(s)" in again.stdout, again
    assert all(r["password"].startswith("(unchanged") for r in sheet(again))
    store = accounts(site)
    maria = store.get("maria")  # never in ml102 at the hub (it has not started): nothing to leave
    assert (maria.roster_group, maria.group_left, maria.groups_pending) == ("ml101", None, True)
    store.update_details("maria", groups_pending=False)  # as the hub's start does
    roster.write_text(ROSTER)  # back to ml102: now she leaves ml101 at the hub
    assert "1 group change(s)" in mlw(site, "user", "import", str(roster)).stdout
    maria = store.get("maria")
    assert (maria.roster_group, maria.group_left, maria.groups_pending) == ("ml102", "ml101", True)
    for name, password in first.items():
        assert store.check_login(name, password, "1.2.3.4", POLICY).outcome is LoginOutcome.OK

    reset = mlw(site, "user", "import", str(roster), "--reset-passwords")
    assert "(3 with a new password)" in reset.stdout, reset
    new = {r["username"]: r["password"] for r in sheet(reset)}
    for name in first:
        assert new[name] != first[name]
        assert store.check_login(name, new[name], "1.2.3.4", POLICY).outcome is LoginOutcome.OK
        assert store.check_login(name, first[name], "5.6.7.8", POLICY).outcome is not (
            LoginOutcome.OK
        )


def test_a_bad_roster_imports_nothing_and_names_every_bad_line(site, tmp_path):
    roster = tmp_path / "bad.csv"
    roster.write_text(ROSTER + "ZHANG,,ml101,\nbad/name,,ml101,\nok_one,,ml 1,\n")
    run = mlw_here(site, "user", "import", str(roster))
    assert run.returncode == 2, run
    assert "3 bad line(s), nothing was imported" in run.stderr, run
    for line in ("line 5:", "line 6:", "line 7:"):
        assert line in run.stderr, run
    assert "Traceback" not in run.output
    assert accounts(site).list() == []
    assert not list(tmp_path.glob("bad-passwords-*"))  # no sheet either


def test_export_round_trips_with_import(site, tmp_path):
    roster = tmp_path / "ml101.csv"
    roster.write_text(ROSTER)
    assert mlw(site, "user", "import", str(roster)).returncode == 0
    exported = mlw(site, "user", "export", "--csv")
    assert exported.returncode == 0, exported
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [(r["username"], r["display_name"], r["group"], r["email"]) for r in rows] == [
        ("li_wei", "Li Wei", "ml101", "li@uni.edu"),
        ("maria", "", "ml102", "maria@uni.edu"),
        ("zhang", "Zhang San", "ml101", ""),
    ]
    again = tmp_path / "exported.csv"
    again.write_text(exported.stdout)
    run = mlw(site, "user", "import", str(again))
    assert "0 new, 3 already there; 0 group change(s)" in run.stdout, run
    assert mlw(site, "user", "export", "--csv").stdout == exported.stdout


def test_a_link_sets_the_password_of_an_account(site):
    store = accounts(site)
    store.create("bob", None, approved=True)
    run = mlw(site, "user", "link", "bob")
    assert run.returncode == 0, run
    link = run.stdout.strip().splitlines()[-1]
    assert "/hub/set-password?token=" in link
    token = link.split("token=")[1]
    assert store.link_owner(token) == "bob"
    refused = mlw_here(site, "user", "link", "nobody")
    assert refused.returncode == 2 and "No account named 'nobody'" in refused.stderr, refused


def test_an_account_without_a_password_gets_one_from_the_roster(site, tmp_path):
    accounts(site).create("maria", None, approved=True)  # added on the Admin page
    roster = tmp_path / "ml101.csv"
    roster.write_text(ROSTER)
    run = mlw(site, "user", "import", str(roster))
    assert "2 new, 1 already there (1 with a new password)" in run.stdout, run
    password = {r["username"]: r["password"] for r in sheet(run)}["maria"]
    assert accounts(site).check_login("maria", password, "1.2.3.4", POLICY).outcome is (
        LoginOutcome.OK
    )
