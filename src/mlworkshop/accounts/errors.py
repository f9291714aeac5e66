"""What the account store raises, apart from the store itself: the command line catches these in
every command, and importing them must not import SQLAlchemy (a third of a second, which every
`mlworkshop` command that never opens the database would pay)."""

from __future__ import annotations


class AccountExists(Exception):
    pass


class NoSuchAccount(Exception):
    pass


class DatabaseUnavailable(Exception):
    """The database cannot be reached or written; str() says which and what to check."""
