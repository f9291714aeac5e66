"""Password rules and hashing. Pure and blocking: the hub calls these on a worker thread."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import bcrypt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from ..i18n import _

# New passwords are stored as Argon2id (argon2-cffi), OWASP's first choice for password storage:
# its minimum (19 MiB of memory, 2 passes) is what auth.password_hash_cost 10 gives, and each step
# up doubles the passes, so the work of a login and of an attacker guessing from a stolen database
# (OWASP's equivalent settings keep memory x passes constant). 11, the default, is twice the
# minimum: ~0.04 CPU-s a login on this project's 2-core test machine, where bcrypt at its own
# "twice the minimum" (cost 11) took 0.134 CPU-s; Argon2id's memory makes each guess on a GPU
# dearer than bcrypt's 4 KiB. Logins were 8 of the 37 CPU-seconds a 60-student rush has on 2
# cores (bench/rush.py). The memory stays 19 MiB at every cost: with one hashing thread per core a
# rush never holds more than a few dozen MiB for passwords.
DEFAULT_COST = 11
ARGON2_MEMORY_KIB = 19 * 1024
OWASP_MINIMUM_COST = 10  # 2 passes over 19 MiB; auth.password_hash_cost refuses less


def _passes(cost: int) -> int:
    """Argon2id passes for a cost: 2 at OWASP's minimum (10), doubling with each step. Costs
    below 10 (only tests ask for them, to be fast) get one pass."""
    return max(1, 2 ** (cost - OWASP_MINIMUM_COST + 1))


@lru_cache(maxsize=8)
def _hasher(cost: int) -> PasswordHasher:
    return PasswordHasher(
        time_cost=_passes(cost), memory_cost=ARGON2_MEMORY_KIB, parallelism=1, type=Type.ID
    )


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


def hash_password(password: str, cost: int = DEFAULT_COST) -> str:
    return _hasher(cost).hash(password)


def verify_password(password: str, hashed: str) -> bool:
    """Argon2id hashes, and bcrypt ones (passwords set by earlier versions keep working;
    `needs_rehash` has the store store them again as Argon2id at their next login)."""
    if hashed.startswith("$2"):
        try:
            return bcrypt.checkpw(password.encode(), hashed.encode())
        except ValueError:  # a malformed hash never matches
            return False
    try:
        return _hasher(DEFAULT_COST).verify(hashed, password)  # the hash names its own parameters
    except (VerificationError, InvalidHashError):  # a wrong password or a malformed hash
        return False


def needs_rehash(hashed: str, cost: int = DEFAULT_COST) -> bool:
    """True for a bcrypt hash or an Argon2id hash made at another cost: after a successful login
    the store stores the password again as this cost asks."""
    if hashed.startswith("$2"):
        return True
    try:
        return _hasher(cost).check_needs_rehash(hashed)
    except (InvalidHashError, ValueError):
        return True


@lru_cache(maxsize=4)
def dummy_hash(cost: int = DEFAULT_COST) -> str:
    """Checked when the user does not exist, so a wrong name costs as long as a wrong password
    and login timing does not reveal which names exist."""
    return hash_password("not a real password", cost)
