"""Usernames: one rule for signup, the CLI and the folders and system accounts made from them.

A name becomes a folder (users/<name>) and a system account (<prefix><name>), so it must be
safe as both: lowercase ASCII letters, digits, '-' and '_', starting with a letter, at most
MAX_LENGTH characters (Linux account names stop at 32, and the prefix takes some).
Uppercase is folded to lowercase (Alice and alice are one account); anything else is refused.
"""

from __future__ import annotations

import re

from .i18n import _

MAX_LENGTH = 24
_VALID = re.compile(r"^[a-z][a-z0-9_-]*$")


class BadUsername(ValueError):
    """str() is a message fit for the signup page and the CLI."""


def normalize_username(raw: str) -> str:
    """Return the canonical name, or raise BadUsername saying what is wrong and what is allowed."""
    name = raw.strip()
    if not name:
        raise BadUsername(_("A username is required."))
    allowed = _("Use lowercase letters a-z, digits, '-' or '_', starting with a letter")
    if not name.isascii():  # before folding: the Kelvin sign K would fold to an ASCII k
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise BadUsername(
            _("Username {name} has non-ASCII characters. {allowed}.").format(
                name=repr(shown), allowed=allowed
            )
        )
    name = name.lower()
    if len(name) > MAX_LENGTH:
        raise BadUsername(
            _("Username is {length} characters long; the most is {most}. {allowed}.").format(
                length=len(name), most=MAX_LENGTH, allowed=allowed
            )
        )
    if not _VALID.match(name):
        raise BadUsername(
            _("Username {name} is not allowed. {allowed} (e.g. alice or li_wei2).").format(
                name=repr(raw), allowed=allowed
            )
        )
    return name


def system_account(name: str, prefix: str) -> str:
    """The Linux account a hub user's server runs as when the hub runs as root."""
    return prefix + normalize_username(name)


def account_name_from_idp(raw: str, keep_domain: bool = False) -> str:
    """The account name for a name an identity provider gives (OIDC, GitHub, Azure AD, LDAP),
    under the same rule as every other name. Deterministic, so one person gets one account at
    every login: `Jane.Doe@uni.edu` -> `jane_doe` (`jane_doe_uni_edu` with keep_domain); accents
    are dropped (José -> jose), any other character outside the rule becomes '_', a name that
    does not start with a letter gets `u` in front, and one longer than MAX_LENGTH is cut and
    ends in 6 hex digits of a hash of the whole name (two long names stay apart). A name that is
    already valid is kept as it is. Two IdP names can still give one account: the caller refuses
    the second (hub/idp.py keeps who has which), never merges them. BadUsername: nothing usable."""
    import hashlib
    import unicodedata

    text = unicodedata.normalize("NFKD", raw.strip())
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    if not keep_domain and "@" in text:
        text = text.split("@", 1)[0]
    text = re.sub(r"[^a-z0-9_-]+", "_", text.encode("ascii", "ignore").decode()).strip("_-")
    if not text:
        raise BadUsername(
            f"The sign-in name {raw[:40]!r} has no letters or digits to make a username of."
        )
    if not text[0].isalpha():
        text = "u" + text
    if len(text) > MAX_LENGTH:
        digest = hashlib.sha256(raw.strip().lower().encode()).hexdigest()[:6]
        text = text[: MAX_LENGTH - 7].rstrip("_-") + "_" + digest
    return normalize_username(text)
