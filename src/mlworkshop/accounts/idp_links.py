"""Which person at an identity provider owns which account (table mlw_idp_links, hub database).

A person is (provider, subject): the provider's name for them that never changes (OIDC `sub`,
GitHub's numeric id, Azure AD's `oid`, the LDAP login name). Their account name is made once, at
their first sign-in, from their display name by names.account_name_from_idp, and kept: a later
change of name at the provider keeps the same account and files. An account name already owned
by someone else (another subject, or a native account with a password) is refused, never shared:
two people never get one account's files.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import DateTime, String, delete, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..db import HUB_SCHEMA, SchemaError, migrate
from .store import Account, Base, DatabaseUnavailable, make_engine, utcnow


class IdPLink(Base):  # the accounts' metadata: hubdb_migrations/env.py compares it with 0003
    __tablename__ = "mlw_idp_links"
    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    idp_name: Mapped[str] = mapped_column(String(255))
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


@dataclass(frozen=True)
class LinkInfo:
    provider: str
    subject: str
    username: str
    idp_name: str
    created: dt.datetime


class AccountTaken(Exception):
    """str() is for the admin (hub log, CLI); .user_message is for the person signing in."""

    def __init__(self, admin_message: str, user_message: str):
        super().__init__(admin_message)
        self.user_message = user_message


def _info(link: IdPLink) -> LinkInfo:
    return LinkInfo(link.provider, link.subject, link.username, link.idp_name, link.created)


class IdPLinks:
    def __init__(self, db_url: str):
        self.engine = make_engine(db_url)
        try:
            migrate(self.engine, HUB_SCHEMA)
        except OperationalError as exc:
            raise DatabaseUnavailable(f"Cannot open the hub database: {exc.orig}.") from None
        except SchemaError as exc:
            raise DatabaseUnavailable(str(exc)) from None

    def claim(
        self, provider: str, subject: str, wanted: str, idp_name: str, record: bool = True
    ) -> str:
        """The account of (provider, subject): the one it has, or `wanted` made theirs now.
        Raises AccountTaken when `wanted` belongs to someone else. record=False only looks (a
        person not yet admitted must not reserve a name someone else may need)."""
        for _ in range(2):  # a second try only after losing a race for the same row
            try:
                with Session(self.engine) as db, db.begin():
                    link = db.get(IdPLink, (provider, subject))
                    if link is not None:
                        return link.username
                    owner = db.scalar(select(IdPLink).where(IdPLink.username == wanted))
                    if owner is not None:
                        raise AccountTaken(
                            f"{provider} user {idp_name!r} (subject {subject}) would get the account "
                            f"{wanted!r}, which already belongs to {owner.provider} user "
                            f"{owner.idp_name!r} (subject {owner.subject}); refused, not merged. If both "
                            f"are one person, `mlworkshop auth unlink {wanted}` and they sign in again.",
                            f"Your sign-in name {idp_name!r} gives the username {wanted!r}, which "
                            "belongs to someone else on this hub. An administrator has to sort this "
                            "out (the hub's log says how); please tell them.",
                        )
                    if db.get(Account, wanted) is not None:
                        raise AccountTaken(
                            f"{provider} user {idp_name!r} (subject {subject}) would get the account "
                            f"{wanted!r}, which is a native (password) account on this hub; refused, "
                            f"not merged. If it is the same person: `mlworkshop user remove {wanted}` "
                            "(files are kept) and they sign in again.",
                            f"Your sign-in name {idp_name!r} gives the username {wanted!r}, which "
                            "already exists on this hub. An administrator has to sort this out (the "
                            "hub's log says how); please tell them.",
                        )
                    if not record:
                        return wanted
                    db.add(
                        IdPLink(
                            provider=provider,
                            subject=subject,
                            username=wanted,
                            idp_name=idp_name[:255],
                            created=utcnow(),
                        )
                    )
                return wanted
            except IntegrityError:
                continue
        raise AccountTaken(  # pragma: no cover - two lost races in a row
            f"Could not record the account of {provider} user {idp_name!r}; try again.",
            "Signing in did not work this time; please try again.",
        )

    def list(self) -> list[LinkInfo]:
        with Session(self.engine) as db:
            return [_info(link) for link in db.scalars(select(IdPLink).order_by(IdPLink.username))]

    def unlink(self, username: str) -> bool:
        """Forget who owns `username` (the account and its files stay); True if there was a link."""
        with Session(self.engine) as db, db.begin():
            return db.execute(delete(IdPLink).where(IdPLink.username == username)).rowcount > 0

    def dispose(self) -> None:
        self.engine.dispose()
