"""Bad usernames at signup (hub/auth.py `sign_up`, the code behind the signup page) and at login."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mlworkshop.accounts.passwords import WeakPassword
from mlworkshop.hub.auth import MLWorkshopAuthenticator
from mlworkshop.names import BadUsername

GOOD = "Corr3ct-Horse"


@pytest.fixture(autouse=True)
def cheap_hashes(cheap_password_hashes):
    """Real Argon2id at cost 4 (tests/conftest.py)."""


@pytest.fixture
def site(tmp_path) -> Path:
    root = tmp_path / "site"
    (root / "state").mkdir(parents=True)
    return root


@pytest.fixture
def auth(site) -> MLWorkshopAuthenticator:
    return MLWorkshopAuthenticator(
        db_url=f"sqlite:///{site / 'state' / 'jupyterhub.sqlite'}",
        admin_users={"ada"},
        reserved_names=["root", "idle-culler"],
    )


def tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ("../x", "not allowed"),
        ("a/b", "not allowed"),
        ("", "username is required"),
        ("a" * 300, "300 characters long"),
        ("jürgen", "non-ASCII"),
        ("李伟", "non-ASCII"),
    ],
)
async def test_bad_names_are_refused_at_signup_and_nothing_is_made(
    auth, site, tmp_path, raw, fragment
):
    before = tree(tmp_path)
    with pytest.raises(BadUsername, match=fragment):
        await auth.sign_up(raw, GOOD, GOOD)
    assert auth.store.list() == []
    assert tree(tmp_path) - before <= {"site/state/jupyterhub.sqlite"}  # at most the database
    assert not (site / "users").exists()


async def test_uppercase_is_folded_and_makes_the_same_account(auth):
    name, approved = await auth.sign_up("Alice", GOOD, GOOD)
    assert (name, approved) == ("alice", False)  # approval needed unless open_signup
    assert [a.username for a in auth.store.list()] == ["alice"]
    with pytest.raises(ValueError, match="'alice' is taken"):
        await auth.sign_up("ALICE", GOOD, GOOD)


async def test_open_signup_approves_at_once(site):
    auth = MLWorkshopAuthenticator(
        db_url=f"sqlite:///{site / 'state' / 'h.sqlite'}", open_signup=True
    )
    assert await auth.sign_up("bob", GOOD, GOOD) == ("bob", True)


@pytest.mark.parametrize("raw", ["ada", "Ada", "root", "idle-culler"])
async def test_admin_and_reserved_names_cannot_be_claimed(auth, raw):
    with pytest.raises(ValueError, match="reserved"):
        await auth.sign_up(raw, GOOD, GOOD)
    assert auth.store.list() == []


@pytest.mark.parametrize(
    "password, confirm, fragment",
    [
        ("short1!", "short1!", "at least 8"),
        ("password123", "password123", "common passwords"),
        ("carolcarol", "carolcarol", "not be the username"),
        (GOOD, GOOD + "x", "do not match"),
    ],
)
async def test_weak_or_mismatched_passwords_at_signup(auth, password, confirm, fragment):
    with pytest.raises((WeakPassword, ValueError), match=fragment):
        await auth.sign_up("carolcarol", password, confirm)
    assert auth.store.list() == []


def test_the_hub_sees_only_valid_names(auth):
    assert auth.validate_username("alice")
    for raw in ("../x", "a/b", "", "a" * 300, "jürgen", "Alice"):
        assert not auth.validate_username(raw), raw
    assert auth.normalize_username("Alice") == "alice"


class _Handler:
    """What authenticate() uses of JupyterHub's login handler."""

    class request:
        headers: dict = {}
        remote_ip = "127.0.0.1"

    def find_user(self, name):
        return None  # a user the hub does not have yet: the account's admin flag counts


async def test_login_with_a_bad_name_is_refused_before_the_database(auth):
    await auth.sign_up("alice", GOOD, GOOD)
    auth.store.approve("alice")
    assert await auth.authenticate(_Handler(), {"username": "../alice", "password": GOOD}) is None
    assert await auth.authenticate(_Handler(), {"username": "a" * 300, "password": GOOD}) is None
    ok = await auth.authenticate(_Handler(), {"username": "Alice", "password": GOOD})
    assert ok == {"name": "alice", "admin": False}


async def test_check_allowed_reads_the_account_store_off_the_event_loop(auth):
    """JupyterHub awaits check_allowed on its event loop at every login that did not come through
    authenticate() (OAuth, a token login); the store query (and the first open of the store, which
    migrates) must run in a thread like the store's other calls, not stall every page meanwhile."""
    import threading

    from jupyterhub.utils import maybe_future

    await auth.sign_up("alice", GOOD, GOOD)
    await asyncio.to_thread(auth.store.approve, "alice")
    loop_thread = threading.get_ident()
    store = auth.store
    threads: list[int] = []
    real_get = store.get

    def get(name):
        threads.append(threading.get_ident())
        return real_get(name)

    store.get = get
    assert await maybe_future(auth.check_allowed("alice")) is True
    assert await maybe_future(auth.check_allowed("bob")) is False  # no such account
    assert await maybe_future(auth.check_allowed("ada")) is True  # a configured admin
    assert threads and loop_thread not in threads
