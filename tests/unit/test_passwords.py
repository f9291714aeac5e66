"""Password rules and hashing (accounts/passwords.py)."""

from __future__ import annotations

import pytest

from mlworkshop.accounts.passwords import (
    WeakPassword,
    check_password_rules,
    dummy_hash,
    hash_password,
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
    hashed = hash_password("Tr4m-lines-Ahead", rounds=4)
    assert hashed.startswith("$2") and "Tr4m" not in hashed
    assert verify_password("Tr4m-lines-Ahead", hashed)
    assert not verify_password("tr4m-lines-ahead", hashed)
    assert hash_password("Tr4m-lines-Ahead", rounds=4) != hashed  # salted


def test_default_cost_is_above_owasps_minimum():
    assert int(hash_password("Tr4m-lines-Ahead").split("$")[2]) >= 11


def test_malformed_hash_never_matches():
    assert not verify_password("anything", "not-a-bcrypt-hash")
    assert not verify_password("", "")


def test_dummy_hash_is_a_real_hash_that_matches_no_usual_password():
    hashed = dummy_hash()
    assert hashed.startswith("$2")
    assert int(hashed.split("$")[2]) >= 11  # as slow to check as a real account's hash
    assert not verify_password("password", hashed)


def test_the_configured_bcrypt_cost_is_what_new_passwords_get(tmp_path):
    """auth.password_hash_cost reaches the stored hash (bcrypt writes its cost into the hash),
    the unknown-user check costs the same, and costs below OWASP's minimum are refused."""
    import pytest
    from pydantic import ValidationError

    from mlworkshop.accounts.store import AccountStore
    from mlworkshop.config.model import AuthConfig

    store = AccountStore(f"sqlite:///{tmp_path / 'hub.sqlite'}", hash_cost=10)
    store.create("ada", "Corr3ct-Horse-10", approved=True)
    with store._session() as db:
        from mlworkshop.accounts.store import Account

        assert db.get(Account, "ada").password_hash.startswith("$2b$10$")
    assert dummy_hash(10).startswith("$2b$10$")
    assert (
        AuthConfig().password_hash_cost == 11
    )  # twice OWASP's minimum; see passwords.BCRYPT_ROUNDS
    with pytest.raises(ValidationError, match="password_hash_cost"):
        AuthConfig(password_hash_cost=8)
