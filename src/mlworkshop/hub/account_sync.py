"""Native accounts and JupyterHub's own user list agree, both ways (issue 16).

JupyterHub's Admin page ("Add Users", delete) and REST API change the hub's users; our accounts
(accounts/store.py) decide who may log in. Without this a user added on the Admin page could
never log in, and one deleted there kept an account and a system account. The authenticator's
hooks (hub/auth.py add_user / delete_user) call in here, so nothing polls:

- a hub user without an account gets an approved one *without a password*; an admin hands them
  a one-time link (Accounts page, or `mlworkshop user link NAME`) and they set their own;
- a roster imported while the hub was stopped left group memberships to make: the hub makes
  them when it starts (add_user runs for every user then);
- the handlers of /hub/authorize (NativeAuthenticator's address of the approval page), of the
  one-time links and of the page that uses them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from urllib.parse import urlencode

from jupyterhub import orm
from jupyterhub.scopes import needs_scope
from sqlalchemy.orm import object_session
from tornado import web

from ..accounts.passwords import WeakPassword, check_password_rules
from ..accounts.store import AccountExists, AccountInfo, AccountStore, NoSuchAccount
from ..i18n import N_, _
from .auth import _Page, _ThroughProxyOnly, password_work  # auth.py imports this module lazily

LINK_PATH = "set-password"


def ensure_account(store: AccountStore, name: str, admin: bool) -> AccountInfo | None:
    """The account of a hub user, made (approved, no password yet) when there is none; returns
    the new account, or None when one existed already."""
    if store.get(name) is not None:
        return None
    try:
        return store.create(name, None, approved=True, is_admin=admin)
    except AccountExists:  # made meanwhile (the CLI, a signup): theirs stands
        return None


def apply_roster_group(user, account: AccountInfo) -> str:
    """Make the group membership a roster asked for while the hub was stopped: into
    account.roster_group, out of account.group_left. `user` is JupyterHub's User or orm.User;
    runs on the hub's event loop (its database session). The caller then clears
    groups_pending. Returns what was done, for the log."""
    orm_user = getattr(user, "orm_user", user)
    db = object_session(orm_user)
    done = []
    if account.group_left and account.group_left != account.roster_group:
        group = orm.Group.find(db, account.group_left)
        if group is not None and orm_user in group.users:
            group.users.remove(orm_user)
            done.append(f"left {account.group_left}")
    if account.roster_group:
        group = orm.Group.find(db, account.roster_group)
        if group is None:
            group = orm.Group(name=account.roster_group)
            db.add(group)
        if orm_user not in group.users:
            group.users.append(orm_user)
            done.append(f"joined {account.roster_group}")
    db.commit()
    return ", ".join(done) or "nothing to change"


def hub_users_without_account(db, accounts: list[AccountInfo]) -> list[str]:
    """Names of hub users that have no account (made before this release, or while the store
    was unreachable): the Accounts page offers them one."""
    have = {a.username for a in accounts}
    return sorted(name for (name,) in db.query(orm.User.name) if name not in have)


def link_url(handler, token: str) -> str:
    """The address a one-time link has for its receiver: the hub's public address when it is
    configured, else the one this admin's browser used."""
    public = handler.authenticator.public_url
    if public and "<" not in public:  # "<this machine>": a wildcard listen address names no host
        base = public.rstrip("/") + "/hub/"
    else:
        base = f"{handler.request.protocol}://{handler.request.host}{handler.hub.base_url}"
    return base + LINK_PATH + "?" + urlencode({"token": token})


class AuthorizeRedirectHandler(_Page):
    """/hub/authorize and /hub/authorize/NAME, where NativeAuthenticator approves signups: the
    Accounts page does that here."""

    def get(self, _name: str | None = None):
        self.redirect(self.hub.base_url + "accounts")


class AccountLinkHandler(_ThroughProxyOnly, _Page):
    """Make a one-time link for an account (and the account itself for a hub user without
    one). The link is shown once, on this page; only its hash is kept."""

    @web.authenticated
    @needs_scope("admin:users")
    async def post(self, name: str):
        auth = self.mlw_auth
        hub_user = self.find_user(name)
        made = None
        if hub_user is not None:
            made = await asyncio.to_thread(ensure_account, auth.store, name, bool(hub_user.admin))
        days = auth.password_link_days
        try:
            token = await asyncio.to_thread(
                auth.store.make_password_link, name, dt.timedelta(days=days)
            )
        except NoSuchAccount:
            raise web.HTTPError(
                404, _("No account or hub user named {name}.").format(name=repr(name))
            ) from None
        self.log.info(
            "Admin %s made a one-time password link for %s%s",
            self.current_user.name,
            name,
            " (and their account)" if made else "",
        )
        self.set_header("Cache-Control", "no-store")
        link = link_url(self, token)  # `username`: render_template's own first argument is name
        await self.page("account-link.html", username=name, link=link, days=days)


class SetPasswordHandler(_ThroughProxyOnly, _Page):
    """The page a one-time link opens: its receiver sets their password, then logs in."""

    async def _owner(self, token: str) -> str | None:
        return await asyncio.to_thread(self.mlw_auth.store.link_owner, token) if token else None

    async def _form(self, token: str, owner: str | None, error: str | None = None, status=200):
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        self.set_header("Referrer-Policy", "no-referrer")  # the token is in this page's address
        await self.page("set-password.html", token=token, owner=owner, error=error, message=None)

    async def get(self):
        token = self.get_argument("token", "")
        owner = await self._owner(token)
        if owner is None:
            return await self._form(token, None, _(GONE), 404)
        await self._form(token, owner)

    async def post(self):
        auth = self.mlw_auth
        token = self.get_body_argument("token", "")
        owner = await self._owner(token)
        if owner is None:
            return await self._form(token, None, _(GONE), 404)
        password = self.get_body_argument("password", "", strip=False)
        if password != self.get_body_argument("password_confirm", "", strip=False):
            return await self._form(token, owner, _("The two passwords do not match."), 400)
        try:
            check_password_rules(
                password, auth.min_password_length, auth.check_common_passwords, owner
            )
            await password_work(auth.store.use_password_link, token, password)
        except WeakPassword as exc:
            return await self._form(token, owner, str(exc), 400)
        except NoSuchAccount:  # used in another tab meanwhile
            return await self._form(token, None, _(GONE), 404)
        self.log.info("%s set their password through a one-time link", owner)
        self.set_header("Cache-Control", "no-store")
        await self.page(
            "set-password.html",
            token="",
            owner=owner,
            error=None,
            message=_("Your password is set. Sign in with it now."),
        )


GONE = N_(  # shown in the reader's language (mlworkshop/i18n.py)
    "This link has been used, has expired or is wrong. Ask your instructor or lab admin for a "
    "new one."
)


def handlers() -> list[tuple]:
    return [
        (r"/authorize", AuthorizeRedirectHandler),
        (r"/authorize/([^/]+)", AuthorizeRedirectHandler),
        (r"/accounts/([^/]+)/link", AccountLinkHandler),
        (rf"/{LINK_PATH}", SetPasswordHandler),
    ]
