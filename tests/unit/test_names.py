"""Username rules (names.py): one rule for signup, the CLI, folders and system accounts."""

from __future__ import annotations

import pytest

from mlworkshop.names import MAX_LENGTH, BadUsername, normalize_username, system_account

ALLOWED_HINT = "lowercase letters a-z"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("alice", "alice"),
        ("Alice", "alice"),  # documented normalisation: case is folded
        ("LI_WEI2", "li_wei2"),
        ("  bob  ", "bob"),  # surrounding blanks from a form are dropped
        ("a-b_c9", "a-b_c9"),
        ("a" * MAX_LENGTH, "a" * MAX_LENGTH),
    ],
)
def test_good_names_are_normalised(raw, expected):
    assert normalize_username(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "../x",
        "a/b",
        "..",
        ".",
        "/etc",
        "x/../../y",
        "a\\b",
        "a b",
        "a\x00b",
        "a:b",
        "a$",
        "a.b",
        "-rf",
        "_x",
        "1abc",
        "ali\nce",
    ],
)
def test_unsafe_names_are_refused_with_the_rule(raw):
    with pytest.raises(BadUsername) as info:
        normalize_username(raw)
    message = str(info.value)
    assert ALLOWED_HINT in message and "starting with a letter" in message
    assert repr(raw) in message  # says which name was refused


@pytest.mark.parametrize("raw", ["", "   ", "\t\n"])
def test_empty_name_is_refused(raw):
    with pytest.raises(BadUsername, match="username is required"):
        normalize_username(raw)


def test_too_long_name_says_the_length_and_the_limit():
    with pytest.raises(BadUsername) as info:
        normalize_username("a" * 300)
    message = str(info.value)
    assert "300" in message and str(MAX_LENGTH) in message
    assert len(message) < 300  # the message does not echo the whole 300-character name
    with pytest.raises(BadUsername):
        normalize_username("a" * (MAX_LENGTH + 1))


@pytest.mark.parametrize("raw", ["jürgen", "李伟", "Ålice", "alice\u200b", "ｌｉ"])
def test_non_ascii_names_are_refused(raw):
    with pytest.raises(BadUsername) as info:
        normalize_username(raw)
    assert "non-ASCII" in str(info.value) and ALLOWED_HINT in str(info.value)


def test_bad_username_is_a_value_error():
    assert issubclass(BadUsername, ValueError)


def test_system_account_is_prefix_plus_normalised_name_within_linux_limit():
    assert system_account("Alice", "mlw-") == "mlw-alice"
    assert len(system_account("a" * MAX_LENGTH, "abcdefgh")) <= 32  # Linux account names: 32 max
    with pytest.raises(BadUsername):
        system_account("../x", "mlw-")


def test_non_ascii_that_folds_to_ascii_is_still_refused():
    # str.lower() turns the Kelvin sign (U+212A) into an ASCII "k"
    with pytest.raises(BadUsername, match="non-ASCII"):
        normalize_username("\u212aate")


def test_a_huge_non_ascii_name_is_not_echoed_whole():
    with pytest.raises(BadUsername) as info:
        normalize_username("é" * 10_000)
    assert "non-ASCII" in str(info.value) and len(str(info.value)) < 200


# --- names from identity providers (auth.method oidc / github / azuread / ldap) ---------------
@pytest.mark.parametrize(
    "raw, keep_domain, expected",
    [
        ("Jane.Doe@uni.edu", False, "jane_doe"),
        ("Jane.Doe@uni.edu", True, "jane_doe_uni_edu"),
        ("José Núñez", False, "jose_nunez"),
        ("alice", False, "alice"),  # a valid name is kept as it is
        ("octo-cat", False, "octo-cat"),
        ("123student", False, "u123student"),
        ("  Bob  ", False, "bob"),
    ],
)
def test_idp_names_become_valid_accounts(raw, keep_domain, expected):
    from mlworkshop.names import account_name_from_idp

    assert account_name_from_idp(raw, keep_domain) == expected
    assert normalize_username(expected) == expected


def test_idp_names_are_stable_and_long_ones_stay_apart():
    from mlworkshop.names import account_name_from_idp

    one = account_name_from_idp("a.very.long.given.name.family-name@uni.edu")
    two = account_name_from_idp("a.very.long.given.name.family-other@uni.edu")
    assert len(one) <= MAX_LENGTH and len(two) <= MAX_LENGTH
    assert one != two
    assert one == account_name_from_idp("a.very.long.given.name.family-name@uni.edu")
    assert account_name_from_idp(one) == one  # applying the rule again changes nothing


@pytest.mark.parametrize("raw", ["", "   ", "@uni.edu", "李雷", "..."])
def test_idp_names_with_nothing_usable_are_refused(raw):
    from mlworkshop.names import account_name_from_idp

    with pytest.raises(BadUsername):
        account_name_from_idp(raw)
