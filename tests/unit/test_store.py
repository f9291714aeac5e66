"""The account store (accounts/store.py): accounts, approval and the lockout that survives restarts.

Runs on SQLite files, and the tests marked `postgres` also on PostgreSQL (the private server
`make test` starts; by hand, 127.0.0.1:5432); those are skipped only when no server was started.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading

import pytest

from mlworkshop.accounts.store import (
    AccountExists,
    AccountStore,
    DatabaseUnavailable,
    LockoutPolicy,
    LoginOutcome,
    NoSuchAccount,
    utcnow,
)

POLICY = LockoutPolicy(attempts=3, minutes=10)
GOOD = "Corr3ct-Horse"
WRONG = "wrong-pass-1"
HOME = "10.0.0.1"
CAFE = "10.0.0.2"


@pytest.fixture(autouse=True)
def cheap_hashes(cheap_password_hashes):
    """Real Argon2id at cost 4 (tests/conftest.py)."""


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'hub.sqlite'}"


@pytest.fixture
def any_store(db_url):
    s = AccountStore(db_url)
    s.create("alice", GOOD, approved=True)
    yield s
    _dispose(s)


def _dispose(*stores: AccountStore) -> None:
    for s in stores:
        s.engine.dispose()  # PostgreSQL: let DROP DATABASE go through without waiting


@pytest.fixture
def store(sqlite_url):
    s = AccountStore(sqlite_url)
    s.create("alice", GOOD, approved=True)
    yield s
    _dispose(s)


# --- accounts ---------------------------------------------------------------------------------
def test_create_get_list_approve_promote_delete(db_url):
    s = AccountStore(db_url)
    try:
        info = s.create("bob", GOOD, approved=False)
        assert (info.username, info.approved, info.is_admin, info.approved_at) == (
            "bob",
            False,
            False,
            None,
        )
        s.create("adam", GOOD, approved=True, is_admin=True)
        assert [a.username for a in s.list()] == ["adam", "bob"]
        assert s.get("nobody") is None
        approved = s.approve("bob")
        assert approved.approved and approved.approved_at is not None
        assert s.set_admin("bob", True).is_admin and s.get("bob").is_admin
        assert not s.set_admin("bob", False).is_admin
        with pytest.raises(AccountExists):
            s.create("bob", "An0ther-pass", approved=True)
        s.delete("bob")
        assert s.get("bob") is None
        for action in (
            s.approve,
            lambda n: s.set_admin(n, True),
            lambda n: s.set_password(n, GOOD),
            s.delete,
        ):
            with pytest.raises(NoSuchAccount):
                action("bob")
    finally:
        _dispose(s)


def test_password_is_stored_hashed(sqlite_url, tmp_path):
    AccountStore(sqlite_url).create("alice", GOOD, approved=True)
    with sqlite3.connect(tmp_path / "hub.sqlite") as db:
        (stored,) = db.execute(
            "SELECT password_hash FROM mlw_accounts WHERE username='alice'"
        ).fetchone()
    assert GOOD not in stored and stored.startswith("$argon2id$")


# --- logins -----------------------------------------------------------------------------------
def test_correct_password_logs_in_and_wrong_one_does_not(store):
    ok = store.check_login("alice", GOOD, HOME, POLICY)
    assert ok.outcome is LoginOutcome.OK and ok.account.username == "alice"
    assert store.check_login("alice", WRONG, HOME, POLICY).outcome is LoginOutcome.BAD_CREDENTIALS
    assert (
        store.check_login("alice", GOOD.lower(), HOME, POLICY).outcome
        is LoginOutcome.BAD_CREDENTIALS
    )


def test_unknown_user_and_wrong_password_look_the_same(store):
    for attempt in range(1, POLICY.attempts + 2):
        unknown = store.check_login("nosuchuser", WRONG, HOME, POLICY)
        wrong = store.check_login("alice", WRONG, HOME, POLICY)
        assert unknown.outcome is wrong.outcome, f"attempt {attempt}"
        assert unknown.account is None and wrong.account is None
        expected = (
            LoginOutcome.BAD_CREDENTIALS if attempt < POLICY.attempts else LoginOutcome.LOCKED
        )
        assert wrong.outcome is expected, f"attempt {attempt}"


def test_not_approved_is_told_only_to_the_right_password(store):
    store.create("newbie", GOOD, approved=False)
    assert store.check_login("newbie", WRONG, HOME, POLICY).outcome is LoginOutcome.BAD_CREDENTIALS
    result = store.check_login("newbie", GOOD, HOME, POLICY)
    assert result.outcome is LoginOutcome.NOT_APPROVED and result.account.username == "newbie"
    store.approve("newbie")
    assert store.check_login("newbie", GOOD, HOME, POLICY).outcome is LoginOutcome.OK


def _fail(store: AccountStore, times: int, client: str = HOME, now: dt.datetime | None = None):
    return [
        store.check_login("alice", WRONG, client, POLICY, now=now).outcome for _ in range(times)
    ]


def test_lockout_after_n_failures_refuses_even_the_right_password(store):
    assert _fail(store, POLICY.attempts) == [LoginOutcome.BAD_CREDENTIALS] * (
        POLICY.attempts - 1
    ) + [LoginOutcome.LOCKED]
    locked = store.check_login("alice", GOOD, HOME, POLICY)
    assert locked.outcome is LoginOutcome.LOCKED
    assert locked.account is None  # a lock says nothing about the account
    minutes = (locked.locked_until - utcnow()).total_seconds() / 60
    assert POLICY.minutes - 1 < minutes <= POLICY.minutes


def test_lock_is_per_client_address(store):
    _fail(store, POLICY.attempts, client=HOME)
    assert store.check_login("alice", GOOD, HOME, POLICY).outcome is LoginOutcome.LOCKED
    assert store.check_login("alice", GOOD, CAFE, POLICY).outcome is LoginOutcome.OK


def test_lock_is_per_username(store):
    store.create("bob", GOOD, approved=True)
    _fail(store, POLICY.attempts)
    assert store.check_login("bob", GOOD, HOME, POLICY).outcome is LoginOutcome.OK


def test_lockout_survives_a_restart_and_is_per_client_and_expires(any_store, db_url):
    start = utcnow()
    assert _fail(any_store, POLICY.attempts, now=start)[-1] is LoginOutcome.LOCKED
    _dispose(any_store)
    restarted = AccountStore(db_url)  # a new hub process on the same database
    try:
        assert restarted.check_login("alice", GOOD, HOME, POLICY).outcome is LoginOutcome.LOCKED
        assert restarted.check_login("alice", GOOD, CAFE, POLICY).outcome is LoginOutcome.OK
        later = start + dt.timedelta(minutes=POLICY.minutes, seconds=1)
        assert (
            restarted.check_login("alice", GOOD, HOME, POLICY, now=later).outcome is LoginOutcome.OK
        )
        _fail(restarted, POLICY.attempts)
        restarted.set_password("alice", "N3w-password-x")
        assert (
            restarted.check_login("alice", "N3w-password-x", HOME, POLICY).outcome
            is LoginOutcome.OK
        )
    finally:
        _dispose(restarted)


def test_lock_is_stored_in_the_database(sqlite_url, tmp_path):
    s = AccountStore(sqlite_url)
    s.create("alice", GOOD, approved=True)
    _fail(s, POLICY.attempts)
    with sqlite3.connect(tmp_path / "hub.sqlite") as db:
        rows = db.execute(
            "SELECT username, client, failures, locked_until FROM mlw_login_failures"
        ).fetchall()
    assert len(rows) == 1
    username, client, failures, locked_until = rows[0]
    assert (username, client, failures) == ("alice", HOME, POLICY.attempts) and locked_until


def test_expired_lock_is_forgiven(store):
    start = utcnow()
    _fail(store, POLICY.attempts, now=start)
    just_before = start + dt.timedelta(minutes=POLICY.minutes) - dt.timedelta(seconds=1)
    assert (
        store.check_login("alice", GOOD, HOME, POLICY, now=just_before).outcome
        is LoginOutcome.LOCKED
    )
    after = start + dt.timedelta(minutes=POLICY.minutes, seconds=1)
    assert store.check_login("alice", GOOD, HOME, POLICY, now=after).outcome is LoginOutcome.OK


def test_after_an_expired_lock_the_count_starts_again(store):
    start = utcnow()
    _fail(store, POLICY.attempts, now=start)
    after = start + dt.timedelta(minutes=POLICY.minutes, seconds=1)
    assert _fail(store, 1, now=after) == [LoginOutcome.BAD_CREDENTIALS]  # not locked again at once
    assert _fail(store, POLICY.attempts - 1, now=after)[-1] is LoginOutcome.LOCKED


def test_old_failures_are_forgiven(store):
    start = utcnow()
    _fail(store, POLICY.attempts - 1, now=start)
    later = start + dt.timedelta(minutes=POLICY.minutes + 1)
    assert _fail(store, 1, now=later) == [LoginOutcome.BAD_CREDENTIALS]


def test_a_successful_login_clears_the_failures(store):
    _fail(store, POLICY.attempts - 1)
    assert store.check_login("alice", GOOD, HOME, POLICY).outcome is LoginOutcome.OK
    assert _fail(store, POLICY.attempts - 1) == [LoginOutcome.BAD_CREDENTIALS] * (
        POLICY.attempts - 1
    )


def test_reset_password_clears_locks_from_every_address(store):
    _fail(store, POLICY.attempts, client=HOME)
    _fail(store, POLICY.attempts, client=CAFE)
    store.set_password("alice", "N3w-password-x")
    for client in (HOME, CAFE):
        assert (
            store.check_login("alice", "N3w-password-x", client, POLICY).outcome is LoginOutcome.OK
        )
    assert store.check_login("alice", GOOD, HOME, POLICY).outcome is LoginOutcome.BAD_CREDENTIALS


def test_unknown_user_gets_locked_too_and_a_new_account_of_that_name_is_not(store):
    _fail_unknown = [
        store.check_login("ghost", WRONG, HOME, POLICY).outcome for _ in range(POLICY.attempts)
    ]
    assert _fail_unknown[-1] is LoginOutcome.LOCKED
    assert store.check_login("ghost", GOOD, HOME, POLICY).outcome is LoginOutcome.LOCKED


def test_parallel_failures_all_count_and_never_crash(any_store):
    """Guesses sent in parallel must not slip past the count, nor fail with a database error."""
    policy = LockoutPolicy(attempts=8, minutes=10)
    outcomes, errors = [], []
    barrier = threading.Barrier(8)

    def guess():
        barrier.wait()
        try:
            outcomes.append(any_store.check_login("alice", WRONG, HOME, policy).outcome)
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            errors.append(repr(exc))

    threads = [threading.Thread(target=guess) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert outcomes.count(LoginOutcome.LOCKED) >= 1  # the 8th failure, whichever thread it was
    assert any_store.check_login("alice", GOOD, HOME, policy).outcome is LoginOutcome.LOCKED


# --- an unreachable database ------------------------------------------------------------------
def test_unreachable_postgres_is_a_clear_error_without_the_password():
    with pytest.raises(DatabaseUnavailable) as info:
        AccountStore("postgresql://hubuser:s3cret-pw@127.0.0.1:1/hub")
    message = str(info.value)
    assert "s3cret-pw" not in message
    assert "127.0.0.1:1" in message and "hub.db_url" in message


def test_unwritable_sqlite_path_is_a_clear_error(tmp_path):
    with pytest.raises(DatabaseUnavailable, match="hub.db_url"):
        AccountStore(f"sqlite:///{tmp_path / 'missing-dir' / 'hub.sqlite'}")


# --- accounts without a password, and one-time links (issue 16) ---------------------------
def test_an_account_without_a_password_cannot_log_in(store):
    store.create("bob", None, approved=True)
    assert store.get("bob").has_password is False
    for attempt in ("", "!", GOOD):
        assert store.check_login("bob", attempt, HOME, POLICY).outcome is not LoginOutcome.OK


def test_a_link_sets_the_password_once(store):
    store.create("bob", None, approved=True)
    token = store.make_password_link("bob", dt.timedelta(days=1))
    assert store.link_owner(token) == "bob"
    assert store.use_password_link(token, GOOD) == "bob"
    assert store.get("bob").has_password is True
    assert store.check_login("bob", GOOD, HOME, POLICY).outcome is LoginOutcome.OK
    assert store.link_owner(token) is None
    with pytest.raises(NoSuchAccount):
        store.use_password_link(token, "Another-pass-9")  # used: gone
    assert store.check_login("bob", GOOD, HOME, POLICY).outcome is LoginOutcome.OK


def test_a_new_link_replaces_the_old_and_links_expire(store):
    store.create("bob", None, approved=True)
    old = store.make_password_link("bob", dt.timedelta(days=1))
    new = store.make_password_link("bob", dt.timedelta(days=1))
    assert store.link_owner(old) is None and store.link_owner(new) == "bob"
    expired = store.make_password_link("bob", dt.timedelta(seconds=-1))
    assert store.link_owner(expired) is None
    with pytest.raises(NoSuchAccount):
        store.use_password_link(expired, GOOD)
    assert store.get("bob").has_password is False


def test_deleting_an_account_deletes_its_links(store):
    store.create("bob", None, approved=True)
    token = store.make_password_link("bob", dt.timedelta(days=1))
    store.delete("bob")
    store.create("bob", GOOD, approved=True)  # a new person with the same name
    assert store.link_owner(token) is None
    with pytest.raises(NoSuchAccount):
        store.make_password_link("nobody", dt.timedelta(days=1))


def test_roster_details_are_kept(store):
    store.create("li_wei", GOOD, approved=True, display_name="Li Wei", email="li@uni.edu")
    store.update_details("li_wei", roster_group="ml101", groups_pending=True)
    info = store.get("li_wei")
    assert (info.display_name, info.email, info.roster_group, info.groups_pending) == (
        "Li Wei",
        "li@uni.edu",
        "ml101",
        True,
    )
