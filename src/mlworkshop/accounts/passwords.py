"""Password rules and hashing. Pure and blocking: the hub calls these on a worker thread."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import bcrypt

from ..i18n import _

# bcrypt cost (auth.password_hash_cost): 11 is ~0.12 CPU-s a login on this project's 2-core test
# machine, twice OWASP's minimum (10). 12 (NativeAuthenticator's) made logins alone take 15 of the
# 40 CPU-seconds two cores have in the 20 s a class of 60 may wait (bench/rush.py).
BCRYPT_ROUNDS = 11


class WeakPassword(ValueError):
    """str() tells the user what a good password needs."""


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    text = resources.files(__package__).joinpath("common-passwords.txt").read_text(encoding="utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line and not line.startswith("#")
    )


def check_password_rules(
    password: str, min_length: int, check_common: bool, username: str = ""
) -> None:
    if len(password) < min_length:
        raise WeakPassword(
            _("The password must be at least {n} characters long.").format(n=min_length)
        )
    if len(password.encode()) > 72:
        raise WeakPassword(_("The password must be at most 72 bytes long."))
    if username and password.lower() == username.lower():
        raise WeakPassword(_("The password must not be the username."))
    if check_common and password.lower() in _common_passwords():
        raise WeakPassword(_("That password is on a list of common passwords; choose another."))


def hash_password(password: str, rounds: int = BCRYPT_ROUNDS) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def verify_password(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), hashed.encode())
    except ValueError:  # a malformed hash never matches
        return False


@lru_cache(maxsize=4)
def dummy_hash(rounds: int = BCRYPT_ROUNDS) -> str:
    """Checked when the user does not exist, so a wrong name costs as long as a wrong password
    and login timing does not reveal which names exist."""
    return hash_password("not a real password", rounds)
