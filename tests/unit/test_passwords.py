"""Password rules and hashing (accounts/passwords.py)."""

from __future__ import annotations

import bcrypt
import pytest

from mlworkshop.accounts.passwords import (
    WeakPassword,
    check_password_rules,
    dummy_hash,
    hash_password,
    needs_rehash,
    verify_password,
)


def rules(password: str, min_length: int = 8, common: bool = True, username: str = "alice") -> None:
    check_password_rules(password, min_length, common, username)


def test_a_good_password_passes():
    rules("Tr4m-lines-Ahead")  # no exception


def test_too_short_says_the_minimum():
    with pytest.raises(WeakPassword, match="at least 8 characters"):
        rules("Ab3$xyz")
    with pytest.raises(WeakPassword, match="at least 12 characters"):
        rules("Ab3$xyz-lon", min_length=12)
    rules("Ab3$xyz-lon", min_length=11)  # exactly the minimum is enough


def test_length_counts_characters_not_bytes():
    rules("密码很长但是字符", min_length=8)  # 8 characters, 24 bytes


def test_more_than_72_bytes_is_refused_because_bcrypt_would_ignore_the_rest():
    with pytest.raises(WeakPassword, match="72 bytes"):
        rules("x" * 73)
    with pytest.raises(WeakPassword, match="72 bytes"):
        rules("密" * 25)  # 25 characters, 75 bytes
    rules("Xy9-" * 18)  # exactly 72 bytes


@pytest.mark.parametrize(
    "password", ["password123", "Password123", "PASSWORD123", "iloveyou", "qwerty123"]
)
def test_common_passwords_are_refused_whatever_the_case(password):
    with pytest.raises(WeakPassword, match="common passwords"):
        rules(password)


def test_common_check_can_be_switched_off():
    rules("password123", common=False)


@pytest.mark.parametrize(
    "password, username",
    [("alicealice", "alicealice"), ("AliceAlice", "alicealice"), ("alicealice", "AliceAlice")],
)
def test_password_equal_to_the_username_is_refused(password, username):
    with pytest.raises(WeakPassword, match="must not be the username"):
        rules(password, username=username)


def test_weak_password_message_never_contains_the_password():
    for password, kwargs in (
        ("Sh0rt!", {}),
        ("password123", {}),
        ("zebra-zebra", {"username": "zebra-zebra"}),
    ):
        with pytest.raises(WeakPassword) as info:
            rules(password, **kwargs)
        assert password not in str(info.value)


def test_hash_and_verify_round_trip():
    hashed = hash_password("Tr4m-lines-Ahead", cost=4)
    assert hashed.startswith("$argon2id$") and "Tr4m" not in hashed
    assert verify_password("Tr4m-lines-Ahead", hashed)
    assert not verify_password("tr4m-lines-ahead", hashed)
    assert hash_password("Tr4m-lines-Ahead", cost=4) != hashed  # salted


def _parameters(hashed: str) -> str:
    return hashed.split("$")[3]  # $argon2id$v=19$m=...,t=...,p=...$salt$hash


def test_default_cost_is_twice_owasps_minimum():
    """OWASP's minimum for Argon2id is 19 MiB and 2 passes; the default doubles the passes."""
    assert _parameters(hash_password("Tr4m-lines-Ahead")) == "m=19456,t=4,p=1"


def test_each_step_of_cost_doubles_the_passes():
    assert [_parameters(hash_password("x", cost)).split(",", 1)[1] for cost in (10, 11, 12)] == [
        "t=2,p=1",
        "t=4,p=1",
        "t=8,p=1",
    ]


def test_malformed_hash_never_matches():
    for hashed in ("not-a-hash", "", "$2b$10$short", "$argon2id$v=19$m=19456,t=2,p=1$x$y"):
        assert not verify_password("anything", hashed)
    assert not verify_password("", "")


def test_passwords_stored_as_bcrypt_by_earlier_versions_still_verify_and_want_a_rehash():
    old = bcrypt.hashpw(b"Tr4m-lines-Ahead", bcrypt.gensalt(4)).decode()
    assert verify_password("Tr4m-lines-Ahead", old)
    assert not verify_password("tr4m-lines-ahead", old)
    assert needs_rehash(old)
    assert not needs_rehash(hash_password("Tr4m-lines-Ahead"))
    assert needs_rehash(hash_password("Tr4m-lines-Ahead", cost=10))  # the cost was raised since
    assert needs_rehash("garbage")


def test_dummy_hash_is_a_real_hash_that_matches_no_usual_password():
    hashed = dummy_hash()
    assert _parameters(hashed) == "m=19456,t=4,p=1"  # as slow to check as a real account's hash
    assert not verify_password("password", hashed)


def test_the_configured_cost_is_what_new_passwords_get(tmp_path):
    """auth.password_hash_cost reaches the stored hash (Argon2id writes its parameters into the
    hash), the unknown-user check costs the same, and costs below OWASP's minimum are refused."""
    from pydantic import ValidationError

    from mlworkshop.accounts.store import Account, AccountStore
    from mlworkshop.config.model import AuthConfig

    store = AccountStore(f"sqlite:///{tmp_path / 'hub.sqlite'}", hash_cost=10)
    store.create("ada", "Corr3ct-Horse-10", approved=True)
    with store._session() as db:
        assert _parameters(db.get(Account, "ada").password_hash) == "m=19456,t=2,p=1"
    assert _parameters(dummy_hash(10)) == "m=19456,t=2,p=1"
    assert AuthConfig().password_hash_cost == 11  # twice OWASP's minimum; see passwords.py
    with pytest.raises(ValidationError, match="password_hash_cost"):
        AuthConfig(password_hash_cost=8)


def test_a_bcrypt_password_is_stored_again_as_argon2id_at_its_next_login(tmp_path):
    """An account from an earlier version logs in with its bcrypt hash; afterwards the store
    holds an Argon2id hash of the same password, and a wrong password changes nothing."""
    from mlworkshop.accounts.store import Account, AccountStore, LockoutPolicy, LoginOutcome

    store = AccountStore(f"sqlite:///{tmp_path / 'hub.sqlite'}", hash_cost=10)
    store.create("ada", None, approved=True)
    old = bcrypt.hashpw(b"Corr3ct-Horse-10", bcrypt.gensalt(4)).decode()
    with store._session() as db, db.begin():
        db.get(Account, "ada").password_hash = old
    policy = LockoutPolicy(attempts=5, minutes=10)

    def stored() -> str:
        with store._session() as db:
            return db.get(Account, "ada").password_hash

    assert store.check_login("ada", "wrong-Horse-10", "10.0.0.1", policy).outcome is (
        LoginOutcome.BAD_CREDENTIALS
    )
    assert stored() == old
    assert store.check_login("ada", "Corr3ct-Horse-10", "10.0.0.1", policy).outcome is (
        LoginOutcome.OK
    )
    assert stored().startswith("$argon2id$") and verify_password("Corr3ct-Horse-10", stored())
    assert store.check_login("ada", "Corr3ct-Horse-10", "10.0.0.1", policy).outcome is (
        LoginOutcome.OK
    )


def test_a_rehash_leaves_a_password_changed_meanwhile_alone(tmp_path):
    from mlworkshop.accounts.store import Account, AccountStore

    store = AccountStore(f"sqlite:///{tmp_path / 'hub.sqlite'}", hash_cost=10)
    store.create("ada", "Corr3ct-Horse-10", approved=True)
    store.set_password("ada", "N3w-Horse-later")
    store._rehash("ada", "$2b$04$the-hash-that-was-verified", "Corr3ct-Horse-10")
    with store._session() as db:
        assert verify_password("N3w-Horse-later", db.get(Account, "ada").password_hash)
