"""Usernames: one rule for signup, the CLI and the folders and system accounts made from them.

A name becomes a folder (users/<name>) and a system account (<prefix><name>), so it must be
safe as both: lowercase ASCII letters, digits, '-' and '_', starting with a letter, at most
MAX_LENGTH characters (Linux account names stop at 32, and the prefix takes some).
Uppercase is folded to lowercase (Alice and alice are one account); anything else is refused.
"""

from __future__ import annotations

import re

MAX_LENGTH = 24
_VALID = re.compile(r"^[a-z][a-z0-9_-]*$")


class BadUsername(ValueError):
    """str() is a message fit for the signup page and the CLI."""


def normalize_username(raw: str) -> str:
    """Return the canonical name, or raise BadUsername saying what is wrong and what is allowed."""
    name = raw.strip()
    if not name:
        raise BadUsername("A username is required.")
    allowed = "Use lowercase letters a-z, digits, '-' or '_', starting with a letter"
    if not name.isascii():  # before folding: the Kelvin sign K would fold to an ASCII k
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise BadUsername(f"Username {shown!r} has non-ASCII characters. {allowed}.")
    name = name.lower()
    if len(name) > MAX_LENGTH:
        raise BadUsername(
            f"Username is {len(name)} characters long; the most is {MAX_LENGTH}. {allowed}."
        )
    if not _VALID.match(name):
        raise BadUsername(f"Username {raw!r} is not allowed. {allowed} (e.g. alice or li_wei2).")
    return name


def system_account(name: str, prefix: str) -> str:
    """The Linux account a hub user's server runs as when the hub runs as root."""
    return prefix + normalize_username(name)
