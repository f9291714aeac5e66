"""`mlworkshop user ...` with the hub stopped: real subprocesses, checked against the account store.
(The running-hub case goes through the hub's API and is covered by tests/integration.)"""

from __future__ import annotations

import os
import pwd
import subprocess

import pytest

from mlworkshop.accounts import passwords
from mlworkshop.accounts.store import AccountStore, LockoutPolicy, LoginOutcome
from mlworkshop.config import load_config
from mlworkshop.site import Site

from .clirun import assert_refused, mlw, mlw_here, mlw_many

GOOD = "Corr3ct-Horse-42"


def accounts(site) -> AccountStore:
    return AccountStore(Site(site).db_url(load_config(site, {})))


def test_add_with_password_from_stdin_then_list_and_export(site):
    admin = mlw(site, "user", "add", "ada", "--admin", "--password-stdin", input=GOOD + "\n")
    assert admin.returncode == 0 and "Added admin ada" in admin.stdout, admin
    student = mlw(site, "user", "add", "Bob", "--password-stdin", input="Another-Pass-77\n")
    assert student.returncode == 0 and "Added user bob" in student.stdout, student  # case folded
    for run, password in ((admin, GOOD), (student, "Another-Pass-77")):
        assert password not in run.output

    store = accounts(site)
    ada, bob = store.get("ada"), store.get("bob")
    assert ada.approved and ada.is_admin and bob.approved and not bob.is_admin
    assert store.get("Bob") is None
    policy = LockoutPolicy()
    assert store.check_login("ada", GOOD, "127.0.0.1", policy).outcome is LoginOutcome.OK
    assert (
        store.check_login("bob", "Another-Pass-77", "127.0.0.1", policy).outcome is LoginOutcome.OK
    )
    store.create("cleo", "Waiting-Pass-9", approved=False)

    listing, export = mlw_many(
        site, [(("user", "list"), None), (("user", "export", "--csv"), None)]
    )
    assert listing.returncode == 0, listing
    lines = {
        line.split()[1]: line
        for line in listing.stdout.splitlines()
        if line.split()[1:2] in (["ada"], ["bob"], ["cleo"])
    }
    assert set(lines) == {"ada", "bob", "cleo"}, listing.stdout
    assert "yes" in lines["ada"] and "yes" not in lines["bob"]
    assert "waiting for approval" in lines["cleo"] and "waiting" not in lines["bob"]
    assert export.returncode == 0, export
    rows = [line.split(",") for line in export.stdout.strip().splitlines()]
    assert rows[0] == [  # the roster's columns first: `user import` reads an export back
        "username",
        "display_name",
        "group",
        "email",
        "approved",
        "admin",
        "created",
        "approved_at",
    ]
    assert [[r[0], *r[4:6]] for r in rows[1:]] == [
        ["ada", "True", "True"],
        ["bob", "True", "False"],
        ["cleo", "False", "False"],
    ]
    assert rows[3][7] == ""  # not approved yet


def test_add_without_a_password_generates_one_and_shows_it_once(site):
    run = mlw(site, "user", "add", "dora")  # stdin is not a terminal: nobody to ask
    assert run.returncode == 0, run
    line = next(ln for ln in run.stdout.splitlines() if "Generated password" in ln)
    password = line.split(":", 1)[1].strip()
    passwords.check_password_rules(password, 8, True, "dora")
    outcome = accounts(site).check_login("dora", password, "127.0.0.1", LockoutPolicy()).outcome
    assert outcome is LoginOutcome.OK


def test_add_refuses_duplicates_and_weak_passwords_without_echoing_them(site):
    accounts(site).create("erin", GOOD, approved=True)
    duplicate, short, common, same = (
        mlw_here(site, "user", "add", name, "--password-stdin", input=pw + "\n")
        for name, pw in (
            ("Erin", "Fresh-Pass-123"),
            ("finn", "Sh0rt!"),
            ("finn", "password123"),
            ("finnfinn", "FinnFinn"),
        )
    )
    assert_refused(duplicate, "'erin' exists already", "reset-password")
    assert_refused(short, "at least 8 characters")
    assert_refused(common, "common passwords")
    assert_refused(same, "must not be the username")
    for run, password in (
        (duplicate, "Fresh-Pass-123"),
        (short, "Sh0rt!"),
        (common, "password123"),
        (same, "FinnFinn"),
    ):
        assert password not in run.output
    assert [a.username for a in accounts(site).list()] == ["erin"]


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("../x", "'../x' is not allowed"),
        ("a/b", "'a/b' is not allowed"),
        ("", "A username is required"),
        ("a" * 300, "300 characters long; the most is 24"),
        ("jürgen", "non-ASCII"),
    ],
)
def test_bad_names_are_refused_and_nothing_is_made_on_disk(site, tmp_path, raw, fragment):
    before = sorted(p for p in tmp_path.rglob("*"))
    run = (mlw if raw == "../x" else mlw_here)(
        site, "user", "add", raw, "--password-stdin", input=GOOD + "\n"
    )
    assert_refused(run, fragment, "lowercase letters a-z" if raw else "")
    assert (
        sorted(p for p in tmp_path.rglob("*")) == before
    )  # nothing new anywhere, in or out of the site
    assert accounts(site).list() == []


def test_approve_promote_demote_and_unknown_users(site):
    store = accounts(site)
    store.create("gus", GOOD, approved=False)
    approve = mlw(site, "user", "approve", "Gus")
    assert approve.returncode == 0 and "Approved gus" in approve.stdout, approve
    assert store.get("gus").approved and store.get("gus").approved_at is not None
    promote = mlw_here(site, "user", "promote", "gus")
    assert promote.returncode == 0 and "gus is now an administrator" in promote.stdout, promote
    assert store.get("gus").is_admin
    demote = mlw_here(site, "user", "demote", "gus")
    assert demote.returncode == 0 and "no longer an administrator" in demote.stdout, demote
    assert not store.get("gus").is_admin

    for run in (
        mlw_here(site, "user", verb, "nobody")
        for verb in ("approve", "promote", "demote", "remove")
    ):
        assert_refused(run, "No account named 'nobody'", "mlworkshop user list")


def test_reset_password_sets_it_and_lifts_the_lockout(site):
    store = accounts(site)
    store.create("hana", GOOD, approved=True)
    policy = LockoutPolicy(attempts=2, minutes=30)
    for _ in range(2):
        store.check_login("hana", "wrong-one-1", "10.1.1.1", policy)
    assert store.check_login("hana", GOOD, "10.1.1.1", policy).outcome is LoginOutcome.LOCKED
    new = "Brand-New-Pass-5"
    reset = mlw(site, "user", "reset-password", "hana", "--password-stdin", input=new + "\n")
    assert reset.returncode == 0 and "New password set for hana" in reset.stdout, reset
    assert new not in reset.output
    assert store.check_login("hana", new, "10.1.1.1", policy).outcome is LoginOutcome.OK

    unknown = mlw_here(
        site, "user", "reset-password", "nobody", "--password-stdin", input="Brand-New-Pass-6\n"
    )
    assert_refused(unknown, "No account named 'nobody'")
    assert "Brand-New-Pass-6" not in unknown.output
    assert store.check_login("hana", new, "10.1.1.2", policy).outcome is LoginOutcome.OK


def test_remove_keeps_files_by_default_and_says_where(site):
    store = accounts(site)
    store.create("ivan", GOOD, approved=True)
    (site / "users" / "ivan" / "work").mkdir(parents=True)
    (site / "users" / "ivan" / "work" / "model.py").write_text("print(1)\n")
    (site / "submissions" / "ivan").mkdir()
    (site / "submissions" / "ivan" / "hw1.ipynb").write_text("{}")
    run = mlw(site, "user", "remove", "ivan")
    assert run.returncode == 0, run
    assert store.get("ivan") is None
    assert (
        str(site / "users" / "ivan") in run.stdout
        and str(site / "submissions" / "ivan") in run.stdout
    )
    assert (site / "users" / "ivan" / "work" / "model.py").exists()
    assert (site / "submissions" / "ivan" / "hw1.ipynb").exists()


def test_remove_with_delete_files_removes_the_folders_and_account(site):
    store = accounts(site)
    store.create("jade", GOOD, approved=True)
    store.create("kai", GOOD, approved=True)
    for name in ("jade", "kai"):
        (site / "users" / name / "work").mkdir(parents=True)
        (site / "submissions" / name).mkdir()
        (site / "submissions" / name / "hw1.ipynb").write_text("{}")
    account = load_config(site, {}).spawner.local.user_prefix + "jade"
    if os.geteuid() == 0:
        subprocess.run(["useradd", "--no-create-home", account], check=True)
    run = mlw(site, "user", "remove", "jade", "--delete-files")
    assert run.returncode == 0 and "Removed jade" in run.stdout, run
    assert store.get("jade") is None and store.get("kai") is not None
    assert not (site / "users" / "jade").exists() and not (site / "submissions" / "jade").exists()
    assert (site / "submissions" / "kai" / "hw1.ipynb").exists() and (
        site / "users" / "kai" / "work"
    ).exists()
    if os.geteuid() == 0:
        with pytest.raises(KeyError):
            pwd.getpwnam(account)


def _hub_user_with_server_pid(site, name: str, pid: int) -> None:
    """The hub's own tables as a stopped hub leaves them: a user whose server had this pid."""
    from jupyterhub import orm
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    engine = create_engine(Site(site).db_url(load_config(site, {})))
    orm.Base.metadata.create_all(engine)
    db = Session(engine)
    user = orm.User(name=name)
    db.add(user)
    db.commit()
    db.add(orm.Spawner(user_id=user.id, name="", state={"pid": pid}))
    db.commit()
    db.close()


def test_remove_with_the_hub_stopped_stops_the_users_server_but_nothing_else(site):
    store = accounts(site)
    store.create("lena", GOOD, approved=True)
    store.create("milo", GOOD, approved=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    server = subprocess.Popen(["sleep", "60"], env={**env, "JUPYTERHUB_USER": "lena"})
    # a pid recorded long ago (the server died, the machine rebooted) now used by something else
    unrelated = subprocess.Popen(["sleep", "60"], env=env)
    try:
        _hub_user_with_server_pid(site, "lena", server.pid)
        _hub_user_with_server_pid(site, "milo", unrelated.pid)
        for name in ("lena", "milo"):
            run = mlw_here(site, "user", "remove", name)
            assert run.returncode == 0, run
        assert server.wait(timeout=10) is not None  # lena's server was asked to stop
        assert unrelated.poll() is None, (
            "user remove killed a process that was not the user's server"
        )
    finally:
        for proc in (server, unrelated):
            proc.kill()
            proc.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a process as another account")
def test_remove_with_the_hub_stopped_stops_a_server_running_as_the_users_account(site):
    """A root hub's server runs as <prefix><name>; a forked one has no JUPYTERHUB_USER in /proc."""
    accounts(site).create("nora", GOOD, approved=True)
    account = load_config(site, {}).spawner.local.user_prefix + "nora"
    subprocess.run(["useradd", "--no-create-home", account], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    server = subprocess.Popen(["sleep", "60"], env=env, user=account, cwd="/")
    try:
        _hub_user_with_server_pid(site, "nora", server.pid)
        run = mlw_here(site, "user", "remove", "nora")
        assert run.returncode == 0, run
        assert server.wait(timeout=10) is not None
    finally:
        server.kill()
        server.wait()


def test_unreachable_database_is_a_clear_error(site):
    from mlworkshop.config import set_key

    set_key(site, "hub.db_url", "postgresql://hub:s3cret-pw@127.0.0.1:1/hub")
    run = mlw_here(site, "user", "list")
    assert_refused(run, "Cannot open the hub database", "127.0.0.1:1", "hub.db_url")
    assert "s3cret-pw" not in run.output


def test_password_stdin_from_a_windows_file_drops_the_carriage_return(site):
    run = mlw_here(site, "user", "add", "olga", "--password-stdin", input=GOOD + "\r\n")
    assert run.returncode == 0, run
    assert (
        accounts(site).check_login("olga", GOOD, "127.0.0.1", LockoutPolicy()).outcome
        is LoginOutcome.OK
    )
