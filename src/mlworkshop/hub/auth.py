"""The native authenticator: accounts with signup, admin approval, password rules and lockouts.

Replaces jupyterhub-nativeauthenticator 1.3.0, which fails every login on JupyterHub 6.1.1
(removed `statsd`, `_render(sync=True)`), hashes on the event loop and forgets lockouts on
restart. Here every password check and database call runs on a worker thread, lockouts live in
the database (accounts/store.py), and admins come only from the CLI or `auth.admin_users`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import pwd
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

from jupyterhub.auth import Authenticator
from jupyterhub.handlers import BaseHandler
from jupyterhub.handlers.login import LoginHandler
from jupyterhub.scopes import needs_scope
from tornado import web
from traitlets import Bool, Integer, List, Unicode, default

from ..accounts.passwords import DEFAULT_COST, WeakPassword, check_password_rules
from ..accounts.store import (
    AccountExists,
    AccountStore,
    DatabaseUnavailable,
    LockoutPolicy,
    LoginOutcome,
    NoSuchAccount,
    utcnow,
)
from ..i18n import N_, _, set_language
from ..names import BadUsername, normalize_username
from .i18n import request_language
from .peer import peer_uid
from .priority import reset_thread_priority

TEMPLATES = str(Path(__file__).parent / "templates")


def _connection_socket(request) -> socket.socket | None:
    """The TCP socket a request came in on (None once the client has gone)."""
    return getattr(getattr(request.connection, "stream", None), "socket", None)


def _peer_ip(request) -> str:
    """Who is at the other end of the connection itself (tornado's remote_ip is X-Forwarded-For's)."""
    sock = _connection_socket(request)
    try:
        return str(sock.getpeername()[0]) if sock is not None else "unknown"
    except OSError:
        return "unknown"


def client_address(handler: web.RequestHandler, through_proxy: bool = True) -> str:
    """The address lockouts are keyed on. Through our proxy: the last X-Forwarded-For entry, the
    one the proxy appended (earlier entries are whatever the client sent). Any other way: the
    connection's own peer, whatever the headers say."""
    request = handler.request
    if not through_proxy:
        return _peer_ip(request)[:64]
    forwarded = request.headers.get("X-Forwarded-For", "")
    return (forwarded.split(",")[-1].strip() or request.remote_ip or "unknown")[:64]


def _minutes_left(until: dt.datetime) -> int:
    return max(1, int((until - utcnow()).total_seconds() // 60) + 1)


# Password hashing (Argon2id, ~0.04 CPU-s at cost 11) runs on threads of its own, one per core:
# when a whole class logs in at once the hashes must not hold up the hub's other thread work
# (workspaces, database writes of starting servers queue on asyncio's default pool). They run at
# nice 0: below the hub's event loop (hub.nice, -5), so pages stay quick, and above the servers
# (nice 5). Measured with bench/rush.py: logins at the servers' priority made the last of 30
# students wait 20 s to log in while the first ones' servers started (6 s above them).
_hash_pool: ThreadPoolExecutor | None = None


async def password_work(fn, *args):
    """Run a password check or hash on the hashing threads."""
    global _hash_pool
    if _hash_pool is None:
        _hash_pool = ThreadPoolExecutor(
            max_workers=os.cpu_count() or 2,
            thread_name_prefix="mlw-passwords",
            initializer=reset_thread_priority,
        )
    return await asyncio.get_running_loop().run_in_executor(
        _hash_pool, functools.partial(fn, *args)
    )


class MLWorkshopAuthenticator(Authenticator):
    db_url = Unicode(help="Database holding the mlw_accounts tables (the hub's own).").tag(
        config=True
    )
    open_signup = Bool(False, help="Approve signups automatically.").tag(config=True)
    min_password_length = Integer(8).tag(config=True)
    check_common_passwords = Bool(True).tag(config=True)
    lockout_attempts = Integer(5).tag(config=True)
    lockout_minutes = Integer(10).tag(config=True)
    password_hash_cost = Integer(
        DEFAULT_COST, help="Argon2id cost of passwords set from now on (passwords.DEFAULT_COST)."
    ).tag(config=True)
    reserved_names = List(
        Unicode(), help="Names nobody may sign up with (the configured admins)."
    ).tag(config=True)
    proxy_account = Unicode(
        "",
        help="System account the proxy runs as (a root hub). Password forms answer only connections "
        "from a socket of this account, and only then is X-Forwarded-For believed. Empty: every "
        "connection is taken as the proxy's (a hub that is not root cannot tell them apart).",
    ).tag(config=True)
    public_url = Unicode(
        "",
        help="The hub's address for people, named when a password form is reached past the proxy.",
    ).tag(config=True)

    password_link_days = Integer(
        7, help="How long a one-time link to set a password stays valid (hub/account_sync.py)."
    ).tag(config=True)

    _store: AccountStore | None = None
    _proxy_uid: int | None = None

    @default("allowed_users")
    def _approved_accounts(self):
        """Approved accounts become hub users (with the `user` role) when the hub starts, not at
        their first login: a class's first minute has no user rows to create, and an instructor
        can put students into groups (limits, quotas) before they ever log in. Who may log in is
        still decided by check_allowed (the account store)."""
        try:
            return {account.username for account in self.store.list() if account.approved}
        except DatabaseUnavailable:
            return set()  # JupyterHub says so itself, next, with its own message

    @property
    def store(self) -> AccountStore:
        if self._store is None:
            self._store = AccountStore(self.db_url, self.password_hash_cost)
        return self._store

    @property
    def policy(self) -> LockoutPolicy:
        return LockoutPolicy(self.lockout_attempts, self.lockout_minutes)

    def normalize_username(self, username: str) -> str:
        try:
            return normalize_username(username)
        except BadUsername:
            return username.strip().lower()  # refused by validate_username / authenticate

    def validate_username(self, username: str) -> bool:
        try:
            return normalize_username(username) == username
        except BadUsername:
            return False

    async def check_allowed(self, username: str, authentication: dict | None = None) -> bool:
        """Approved accounts are allowed (JupyterHub 5+ admits nobody without an allow rule).
        JupyterHub awaits this on its event loop: the store is asked in a thread, like its other calls."""
        if authentication and authentication.get("name") == username and "admin" in authentication:
            return True  # authenticate() already checked approval against the store
        account = await asyncio.to_thread(
            lambda: self.store.get(username)
        )  # the first call opens the store
        return bool(account and account.approved) or username in self.admin_users

    async def authenticate(self, handler, data):
        try:
            username = normalize_username(data.get("username", ""))
        except BadUsername:
            return None
        password = data.get("password", "")
        await self.require_proxy(
            handler
        )  # the login handler checked already; this is the one that counts
        result = await password_work(
            self.store.check_login, username, password, client_address(handler), self.policy
        )
        if result.outcome is LoginOutcome.LOCKED:
            raise web.HTTPError(
                403,
                _(
                    "Too many failed logins. Try again in {minutes} minutes, "
                    "or ask an administrator to reset your password."
                ).format(minutes=_minutes_left(result.locked_until)),
            )
        if result.outcome is LoginOutcome.NOT_APPROVED:
            raise web.HTTPError(403, _("Your account is waiting for an administrator's approval."))
        if result.outcome is not LoginOutcome.OK:
            return None
        account = result.account
        admin = await self._admin_now(handler, username, account.is_admin)
        return {"name": username, "admin": admin}

    async def _admin_now(self, handler, username: str, account_admin: bool) -> bool:
        """Whether `username` is an admin as of this login. auth.admin_users always are. For a
        user the hub has seen before, the hub's own flag: JupyterHub's Admin page and REST API
        change only that one, and answering with the account's older flag reverted the change at
        the next login (the CLI's `user admin`/`unadmin` change both). The account then follows
        it, so the Accounts page and the CLI agree. A user the hub made from the approved accounts
        when it started and who never came (no activity yet) is not an admin there yet: for them,
        and for users the hub does not have, the account's flag."""
        if username in self.admin_users:
            return True
        hub_user = handler.find_user(username) if handler is not None else None
        if hub_user is None or not (hub_user.admin or hub_user.orm_user.last_activity):
            return account_admin
        admin = bool(hub_user.admin)
        if admin != account_admin:
            await asyncio.to_thread(self.store.set_admin, username, admin)
        return admin

    # --- who is at the other end --------------------------------------------------------
    def proxy_uid(self) -> int:
        """The proxy account's uid (-1 when it does not exist: then no connection is the proxy's)."""
        if self._proxy_uid is None:
            try:
                self._proxy_uid = pwd.getpwnam(self.proxy_account).pw_uid
            except KeyError:
                self.log.error(
                    "The proxy's account %s does not exist: password forms refuse every "
                    "connection. Start the hub with `mlworkshop up`, which makes it.",
                    self.proxy_account,
                )
                self._proxy_uid = -1
        return self._proxy_uid

    async def through_proxy(self, handler) -> bool:
        """Did this request come through our proxy? Decided by the owner of the socket at the other
        end of the connection (hub/peer.py), never by anything the client sent; kept per request."""
        if not self.proxy_account:
            return True
        known = getattr(handler, "_mlw_through_proxy", None)
        if known is None:
            sock = _connection_socket(handler.request)
            uid = await asyncio.to_thread(peer_uid, sock) if sock is not None else None
            known = uid is not None and uid == self.proxy_uid()
            handler._mlw_through_proxy = known
        return known

    async def require_proxy(self, handler) -> None:
        """Forms that take a password answer only through the proxy: straight to the hub's loopback
        port, a local account could send any X-Forwarded-For and dodge (or aim) the lockout."""
        if not await self.through_proxy(handler):
            self.log.warning(
                "Refused %s %s from %s: not through the proxy",
                handler.request.method,
                handler.request.path,
                _peer_ip(handler.request),
            )
            where = self.public_url or _("the hub's address")
            raise web.HTTPError(
                403,
                _("Sign in through the hub's address, {where}, not its internal port.").format(
                    where=where
                ),
            )

    async def add_user(self, user):
        """Every hub user has an account (hub/account_sync.py): one added on the Admin page or by
        the API gets an approved one without a password, for which an admin makes a one-time
        link on the Accounts page. A roster's group membership left for the hub (imported while
        it was stopped) is made here: JupyterHub calls this for every user when it starts."""
        from .account_sync import apply_roster_group, ensure_account

        if self.validate_username(user.name):  # others: super() refuses them with its message
            try:
                made = await asyncio.to_thread(
                    ensure_account, self.store, user.name, bool(user.admin)
                )
                account = made or await asyncio.to_thread(self.store.get, user.name)
            except DatabaseUnavailable as exc:
                self.log.error("No account could be made for hub user %s: %s", user.name, exc)
                account = made = None
            if made:
                self.log.info(
                    "Made an approved account without a password for %s (added on the Admin "
                    "page or by the API): make their one-time link on the Accounts page",
                    user.name,
                )
            if account is not None and account.groups_pending:
                done = apply_roster_group(user, account)
                await asyncio.to_thread(
                    self.store.update_details, user.name, groups_pending=False, group_left=None
                )
                self.log.info("Roster groups of %s: %s", user.name, done)
        return super().add_user(user)

    def delete_user(self, user) -> None:
        """Deleting a hub user (admin page, API) deletes the account; files stay on disk."""
        try:
            self.store.delete(user.name)
        except NoSuchAccount:
            pass
        super().delete_user(user)

    def get_handlers(self, app):
        from .account_sync import handlers

        return [
            *handlers(),  # /authorize, one-time password links
            (r"/login", ProxiedLoginHandler),
            (r"/signup", SignUpHandler),
            (r"/accounts", AccountsHandler),
            (r"/accounts/([^/]+)/(approve|reset-password)", AccountActionHandler),
            (r"/change-password", ChangePasswordHandler),
            (r"/guide", GuideHandler),
        ]

    # --- used by the handlers -----------------------------------------------------------
    async def sign_up(self, raw_name: str, password: str, confirm: str) -> tuple[str, bool]:
        """Create an account; returns (name, approved). Raises ValueError with a message."""
        name = normalize_username(raw_name)
        if name in self.admin_users or name in self.reserved_names:
            raise ValueError(
                _("The name {name} is reserved. Choose another username.").format(name=repr(name))
            )
        if password != confirm:
            raise ValueError(_("The two passwords do not match."))
        check_password_rules(password, self.min_password_length, self.check_common_passwords, name)
        try:
            await password_work(self.store.create, name, password, self.open_signup)
        except AccountExists:
            raise ValueError(
                _("The username {name} is taken. Choose another.").format(name=repr(name))
            ) from None
        return name, self.open_signup


class _ThroughProxyOnly:
    """Handlers of forms that take a password: nothing is answered past the proxy."""

    async def prepare(self):
        set_language(request_language(self))  # a refusal here is said in the reader's language
        await self.authenticator.require_proxy(self)
        return await super().prepare()


# JupyterHub's own words on the sign-in page (its handlers have no translations): marked here so
# they reach the catalogs, translated when shown.
JUPYTERHUB_LOGIN_ERRORS = (N_("Invalid username or password"),)


class ProxiedLoginHandler(_ThroughProxyOnly, LoginHandler):
    def _render(self, login_error=None, username=None, **kwargs):
        if login_error in JUPYTERHUB_LOGIN_ERRORS:
            login_error = _(login_error)
        return super()._render(login_error=login_error, username=username, **kwargs)


class _Page(BaseHandler):
    @property
    def mlw_auth(self) -> MLWorkshopAuthenticator:
        return self.authenticator

    async def page(self, name: str, **ns) -> None:
        self.finish(await self.render_template(name, **ns))


class SignUpHandler(_ThroughProxyOnly, _Page):
    async def get(self):
        await self.page("signup.html", message=None, error=None, username="")

    async def post(self):
        username = self.get_body_argument("username", "", strip=True)
        try:
            name, approved = await self.mlw_auth.sign_up(
                username,
                self.get_body_argument("password", "", strip=False),
                self.get_body_argument("password_confirm", "", strip=False),
            )
        except (ValueError, BadUsername, WeakPassword) as exc:
            self.set_status(400)
            return await self.page("signup.html", message=None, error=str(exc), username=username)
        self.log.info("New account %s (approved=%s)", name, approved)
        message = (
            _("Your account is ready: you can log in now.")
            if approved
            else _(
                "Your account was created. An administrator must approve it before you can log in."
            )
        )
        await self.page("signup.html", message=message, error=None, username=name)


class AccountsHandler(_Page):
    """Admin page: every account, with approve and password-reset buttons."""

    @web.authenticated
    @needs_scope("admin:users")  # admins have it by their role; a role can give it to an assistant
    async def get(self):
        from .account_sync import hub_users_without_account

        accounts = await asyncio.to_thread(self.mlw_auth.store.list)
        await self.page(
            "accounts.html",
            accounts=accounts,
            message=self.get_argument("message", None),
            no_account=hub_users_without_account(self.db, accounts),
            no_password=[a.username for a in accounts if not a.has_password],
        )


class AccountActionHandler(_ThroughProxyOnly, _Page):
    @web.authenticated
    @needs_scope("admin:users")
    async def post(self, name: str, action: str):
        store = self.mlw_auth.store
        try:
            if action == "approve":
                await asyncio.to_thread(store.approve, name)
                self.user_from_username(
                    name
                )  # a hub user now (groups can be set before first login)
                message = _("Approved {name}.").format(name=name)
            else:
                password = self.get_body_argument("password", "", strip=False)
                check_password_rules(
                    password,
                    self.mlw_auth.min_password_length,
                    self.mlw_auth.check_common_passwords,
                    name,
                )
                await password_work(store.set_password, name, password)
                message = _("New password set for {name}.").format(name=name)
        except NoSuchAccount:
            raise web.HTTPError(
                404, _("No account named {name}.").format(name=repr(name))
            ) from None
        except WeakPassword as exc:
            message = _("Password for {name} not changed: {reason}").format(name=name, reason=exc)
        self.log.info("Admin %s: %s %s", self.current_user.name, action, name)
        self.redirect(self.hub.base_url + "accounts?" + urlencode({"message": message}))


class ChangePasswordHandler(_ThroughProxyOnly, _Page):
    @web.authenticated
    async def get(self):
        await self.page("change-password.html", message=None, error=None)

    @web.authenticated
    async def post(self):
        auth = self.mlw_auth
        name = self.current_user.name
        current = self.get_body_argument("current_password", "", strip=False)
        new = self.get_body_argument("new_password", "", strip=False)
        confirm = self.get_body_argument("new_password_confirm", "", strip=False)
        result = await password_work(
            auth.store.check_login,
            name,
            current,
            client_address(self, await auth.through_proxy(self)),
            auth.policy,
        )
        error = None
        if result.outcome not in (LoginOutcome.OK, LoginOutcome.NOT_APPROVED):
            error = _("The current password is wrong.")
        elif new != confirm:
            error = _("The two new passwords do not match.")
        else:
            try:
                check_password_rules(
                    new, auth.min_password_length, auth.check_common_passwords, name
                )
                await password_work(auth.store.set_password, name, new)
            except WeakPassword as exc:
                error = str(exc)
        if error:
            self.set_status(400)
        await self.page(
            "change-password.html", message=None if error else _("Password changed."), error=error
        )


class GuideHandler(_Page):
    """The student guide (templates/guide.html), linked from the sign-in page: no login needed."""

    async def get(self):
        await self.page("guide.html")
