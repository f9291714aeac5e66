"""Accounts and login lockouts, kept in the hub's own database (tables mlw_*).

Both the hub (through the authenticator, on worker threads) and the CLI use this store, so user
management works whether or not the hub is running. Lockouts live here, not in memory, so a hub
restart does not reset them.

Lockout key: (username, client address). Five wrong passwords from one address lock that address
out of that account for the lockout period; the real owner, logging in from anywhere else, is not
locked out by someone guessing, and a guesser cannot extend a lock forever from another address
without being locked there too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import Boolean, DateTime, Integer, String, delete, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from ..db import HUB_SCHEMA, SchemaError, SQLiteMode, migrate
from ..db import make_engine as _make_engine
from .errors import AccountExists, DatabaseUnavailable, NoSuchAccount
from .passwords import DEFAULT_COST, dummy_hash, hash_password, needs_rehash, verify_password


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "mlw_accounts"
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(128))
    approved: Mapped[bool] = mapped_column(Boolean, default=False)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    approved_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # from a class roster (accounts/roster.py); roster_group: the JupyterHub group the roster put
    # the user in; groups_pending: that membership is still to be made by the hub (it was
    # imported while the hub was stopped; the hub does it at its next start, hub/auth.py add_user)
    display_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    email: Mapped[str | None] = mapped_column(String(255), nullable=True)
    roster_group: Mapped[str | None] = mapped_column(String(255), nullable=True)
    group_left: Mapped[str | None] = mapped_column(String(255), nullable=True)
    groups_pending: Mapped[bool] = mapped_column(Boolean, default=False)


class PasswordLink(Base):
    """A one-time link that lets its holder set the password of an account (one made on
    JupyterHub's admin page has none). Only a hash of the link's token is kept."""

    __tablename__ = "mlw_password_links"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    expires: Mapped[dt.datetime] = mapped_column(DateTime)


class LoginFailure(Base):
    __tablename__ = "mlw_login_failures"
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    client: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


NO_PASSWORD = ""  # password_hash of an account whose owner has not set one yet (no login)


@dataclass(frozen=True)
class AccountInfo:
    username: str
    approved: bool
    is_admin: bool
    created: dt.datetime
    approved_at: dt.datetime | None
    has_password: bool = True
    display_name: str | None = None
    email: str | None = None
    roster_group: str | None = None
    group_left: str | None = None
    groups_pending: bool = False


class LoginOutcome(Enum):
    OK = "ok"
    BAD_CREDENTIALS = "bad"
    NOT_APPROVED = "not-approved"
    LOCKED = "locked"


@dataclass(frozen=True)
class LoginResult:
    outcome: LoginOutcome
    account: AccountInfo | None = None
    locked_until: dt.datetime | None = None


@dataclass(frozen=True)
class LockoutPolicy:
    attempts: int = 5
    minutes: int = 10


# An account or a lockout survives a power cut: a full fsync per commit (a handful per login at
# most; a successful login without earlier failures writes nothing). The hub process makes its
# database WAL (hub/sqlite_tuning.py).
SQLITE = SQLiteMode(synchronous="FULL")


def make_engine(db_url: str) -> Engine:
    return _make_engine(db_url, SQLITE, pool_size=4, max_overflow=4)


def _info(account: Account) -> AccountInfo:
    return AccountInfo(
        account.username,
        account.approved,
        account.is_admin,
        account.created,
        account.approved_at,
        has_password=account.password_hash != NO_PASSWORD,
        display_name=account.display_name,
        email=account.email,
        roster_group=account.roster_group,
        group_left=account.group_left,
        groups_pending=bool(account.groups_pending),
    )


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccountStore:
    def __init__(self, db_url: str, hash_cost: int = DEFAULT_COST):
        self.db_url = db_url
        self.hash_cost = hash_cost
        self.engine = make_engine(db_url)
        try:
            migrate(self.engine, HUB_SCHEMA)  # accounts survive upgrades: Alembic, never create_all
        except OperationalError as exc:
            raise DatabaseUnavailable(
                f"Cannot open the hub database {_redact(db_url)}: {exc.orig}. "
                "Check that the server is running and hub.db_url is right."
            ) from None
        except SchemaError as exc:
            raise DatabaseUnavailable(str(exc)) from None

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # --- accounts -----------------------------------------------------------------------
    def create(
        self,
        username: str,
        password: str | None,
        approved: bool,
        is_admin: bool = False,
        **details,
    ) -> AccountInfo:
        """password None: an account without one (its owner sets it through a one-time link).
        details: display_name, email, roster_group, groups_pending."""
        hashed = NO_PASSWORD if password is None else hash_password(password, self.hash_cost)
        with self._session() as db, db.begin():
            if db.get(Account, username) is not None:
                raise AccountExists(username)
            account = Account(
                username=username,
                password_hash=hashed,
                approved=approved,
                is_admin=is_admin,
                created=utcnow(),
                approved_at=utcnow() if approved else None,
                groups_pending=False,
                **details,
            )
            db.add(account)
        return _info(account)

    def import_roster(self, rows: list[tuple[str, str, bool, dict]]) -> list[str]:
        """A class roster in one transaction (all or nothing). rows: (username, password hash,
        reset, values): a new account is made approved with that hash; an existing one gets it
        only when reset is true, and is approved if it was waiting. values: display_name, email,
        roster_group, group_left, groups_pending. Returns the names that were new."""
        made = []
        now = utcnow()
        with self._session() as db, db.begin():
            for username, hashed, reset, values in rows:
                account = db.get(Account, username)
                if account is None:
                    account = Account(
                        username=username,
                        password_hash=hashed,
                        approved=True,
                        is_admin=False,
                        created=now,
                        approved_at=now,
                        groups_pending=False,
                    )
                    db.add(account)
                    made.append(username)
                elif reset:
                    account.password_hash = hashed
                    db.execute(delete(LoginFailure).where(LoginFailure.username == username))
                if not account.approved:
                    account.approved, account.approved_at = True, now
                for key, value in values.items():
                    setattr(account, key, value)
        return made

    def update_details(self, username: str, **values) -> AccountInfo:
        """display_name, email, roster_group, group_left, groups_pending."""
        return self._update(username, **values)

    def get(self, username: str) -> AccountInfo | None:
        with self._session() as db:
            account = db.get(Account, username)
            return _info(account) if account else None

    def list(self) -> list[AccountInfo]:
        with self._session() as db:
            return [_info(a) for a in db.scalars(select(Account).order_by(Account.username))]

    def _update(self, username: str, **values) -> AccountInfo:
        with self._session() as db, db.begin():
            account = db.get(Account, username)
            if account is None:
                raise NoSuchAccount(username)
            for key, value in values.items():
                setattr(account, key, value)
        return _info(account)

    def approve(self, username: str) -> AccountInfo:
        return self._update(username, approved=True, approved_at=utcnow())

    def set_admin(self, username: str, is_admin: bool) -> AccountInfo:
        return self._update(username, is_admin=is_admin)

    def set_password(self, username: str, password: str) -> AccountInfo:
        info = self._update(username, password_hash=hash_password(password, self.hash_cost))
        self.clear_lockouts(username)
        return info

    def delete(self, username: str) -> None:
        with self._session() as db, db.begin():
            account = db.get(Account, username)
            if account is None:
                raise NoSuchAccount(username)
            db.delete(account)
            db.execute(delete(LoginFailure).where(LoginFailure.username == username))
            db.execute(delete(PasswordLink).where(PasswordLink.username == username))

    # --- one-time links to set a password -----------------------------------------------
    def make_password_link(self, username: str, valid: dt.timedelta) -> str:
        """A new token for `username` (earlier ones stop working); only its hash is stored."""
        token = secrets.token_urlsafe(24)
        with self._session() as db, db.begin():
            if db.get(Account, username) is None:
                raise NoSuchAccount(username)
            db.execute(delete(PasswordLink).where(PasswordLink.username == username))
            db.add(
                PasswordLink(
                    token_hash=_token_hash(token), username=username, expires=utcnow() + valid
                )
            )
        return token

    def link_owner(self, token: str) -> str | None:
        """Whose account a token sets the password of; None when unknown or expired."""
        with self._session() as db:
            link = db.get(PasswordLink, _token_hash(token))
            if link is None or link.expires <= utcnow():
                return None
            return link.username

    def use_password_link(self, token: str, password: str) -> str:
        """Set the password through a link, once: the link is gone afterwards. Returns the
        username; NoSuchAccount when the link is unknown, used or expired."""
        hashed = hash_password(password, self.hash_cost)
        with self._session() as db, db.begin():
            link = db.get(PasswordLink, _token_hash(token))
            if link is None or link.expires <= utcnow():
                raise NoSuchAccount("link")
            account = db.get(Account, link.username)
            db.delete(link)
            if account is None:
                raise NoSuchAccount(link.username)
            account.password_hash = hashed
            db.execute(delete(LoginFailure).where(LoginFailure.username == account.username))
            return account.username

    # --- logins -------------------------------------------------------------------------
    def _rehash(self, username: str, old_hash: str, password: str) -> None:
        """Store a just-verified password again at this store's cost; only if its hash is still
        the one verified (a password changed meanwhile is left alone). Once per account."""
        hashed = hash_password(password, self.hash_cost)
        try:
            self._store_rehash(username, old_hash, hashed)
        except SQLAlchemyError:  # a full disk or a busy database: the old hash still works
            pass  # and the next login tries again; the login itself must not fail for it

    def _store_rehash(self, username: str, old_hash: str, hashed: str) -> None:
        with self._session() as db, db.begin():
            db.execute(
                update(Account)
                .where(Account.username == username, Account.password_hash == old_hash)
                .values(password_hash=hashed)
            )

    def clear_lockouts(self, username: str) -> None:
        with self._session() as db, db.begin():
            db.execute(delete(LoginFailure).where(LoginFailure.username == username))

    def check_login(
        self,
        username: str,
        password: str,
        client: str,
        policy: LockoutPolicy,
        now: dt.datetime | None = None,
    ) -> LoginResult:
        """Blocking (Argon2id, ~0.04 s at the default cost): call it on a worker thread."""
        now = now or utcnow()
        with self._session() as db:
            failure = db.get(LoginFailure, (username, client))
            if failure and failure.locked_until and failure.locked_until > now:
                return LoginResult(LoginOutcome.LOCKED, locked_until=failure.locked_until)
            account = db.get(Account, username)
            usable = account is not None and account.password_hash != NO_PASSWORD
            hashed = account.password_hash if usable else dummy_hash(self.hash_cost)
        if not verify_password(password, hashed) or not usable:  # no password yet: none matches
            locked_until = self._record_failure(username, client, policy, now)
            if locked_until:
                return LoginResult(LoginOutcome.LOCKED, locked_until=locked_until)
            return LoginResult(LoginOutcome.BAD_CREDENTIALS)
        if failure is not None:  # most logins have none: no write, no fsync on the login path
            self.clear_failures(username, client)
        if needs_rehash(hashed, self.hash_cost):  # bcrypt from an earlier version, or a new cost
            self._rehash(username, hashed, password)
        if not account.approved:
            return LoginResult(LoginOutcome.NOT_APPROVED, _info(account))
        return LoginResult(LoginOutcome.OK, _info(account))

    def clear_failures(self, username: str, client: str) -> None:
        with self._session() as db, db.begin():
            db.execute(
                delete(LoginFailure).where(
                    LoginFailure.username == username, LoginFailure.client == client
                )
            )

    def _record_failure(
        self, username: str, client: str, policy: LockoutPolicy, now: dt.datetime
    ) -> dt.datetime | None:
        """Count one failure atomically: logins run on parallel worker threads (and hub
        processes), so read-modify-write here would lose counts or hit a duplicate key."""
        window = dt.timedelta(minutes=policy.minutes)
        key = (LoginFailure.username == username, LoginFailure.client == client)
        plain = {"synchronize_session": False}
        self._ensure_failure_row(username, client, now)
        with self._session() as db, db.begin():
            # old failures and served lockouts are forgiven
            db.execute(
                update(LoginFailure)
                .where(
                    *key,
                    or_(LoginFailure.last_failure < now - window, LoginFailure.locked_until <= now),
                )
                .values(failures=0, locked_until=None),
                execution_options=plain,
            )
            db.execute(
                update(LoginFailure)
                .where(*key)
                .values(failures=LoginFailure.failures + 1, last_failure=now),
                execution_options=plain,
            )
            db.execute(
                update(LoginFailure)
                .where(*key, LoginFailure.failures >= policy.attempts)
                .values(locked_until=now + window),
                execution_options=plain,
            )
            return db.scalar(select(LoginFailure.locked_until).where(*key))

    def _ensure_failure_row(self, username: str, client: str, now: dt.datetime) -> None:
        values = {"username": username, "client": client, "failures": 0, "last_failure": now}
        dialect = self.engine.dialect.name
        if dialect in ("sqlite", "postgresql"):
            if dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert
            else:
                from sqlalchemy.dialects.postgresql import insert
            with self._session() as db, db.begin():
                db.execute(insert(LoginFailure).values(**values).on_conflict_do_nothing())
            return
        try:
            with self._session() as db, db.begin():
                if db.get(LoginFailure, (username, client)) is None:
                    db.add(LoginFailure(**values))
        except IntegrityError:
            pass  # another thread made it first


def _redact(db_url: str) -> str:
    """A URL fit for a message: the password, if any, replaced."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(db_url).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable URL)"
