"""auth.method: header -- a company SSO in front of the hub names the user (seed 002's cookie SSO).

Two ways (config/auth_header.py):

1. A reverse proxy signs people in and sets a username header. The header is believed only when
   the request came from one of `trusted_proxies`, and "came from" is decided by what nobody but
   the network can forge:
   - the connection to the hub is our own proxy's (a root hub: the owner of the socket at the
     other end, hub/peer.py; a local account talking to the hub's internal port is refused), and
   - the address our proxy saw, which it appends *last* to X-Forwarded-For (anything before it is
     whatever the client sent), is a trusted one.
   Under a root hub an address of this machine cannot be trusted: every local account can open a
   connection from it (127.0.0.2, or the machine's own LAN address), so such a setting refuses
   every header sign-in and says why in the hub log.
2. A "who am I" URL: the hub calls it with the user's cookies (those named in `cookies`, or all
   but the hub's own) and reads the username from its JSON answer; 401/403 send the user to
   `login_url`. Nothing the browser sends is taken for a name.

Either way the name goes through the project's one rule (names.py): `Alice` signs in as `alice`; a
name the rule refuses (`Jane.Doe@uni.edu`) gets a page that says why, and no account.
"""

from __future__ import annotations

import ipaddress
import json
from http.cookies import SimpleCookie
from urllib.parse import quote

import psutil
from jupyterhub.handlers import BaseHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Float, List, Unicode

from ..i18n import N_, _
from ..names import BadUsername, normalize_username
from .auth import MLWorkshopAuthenticator, _peer_ip, client_address

HUB_COOKIES = ("jupyterhub-", "_xsrf")


def local_addresses() -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address of this machine (loopback included)."""
    found = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            try:
                found.append(ipaddress.ip_address(entry.address.split("%", 1)[0]))
            except ValueError:
                pass  # a link-layer (MAC) address
    return found


def local_trusted(networks: list[str]) -> list[str]:
    """The trusted proxy networks that hold an address of this machine (loopback included)."""
    here = local_addresses()
    bad = []
    for raw in networks:
        network = ipaddress.ip_network(raw, strict=False)
        if network.overlaps(ipaddress.ip_network("127.0.0.0/8")) or any(
            address in network for address in here if address.version == network.version
        ):
            bad.append(raw)
    return bad


def _address(raw: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(raw.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


NOT_ANSWERING = N_("The sign-in service is not answering. Try again in a minute.")


class NotSignedIn(Exception):
    """The SSO does not know this browser: send it to the login URL (or say where to sign in)."""


class HeaderAuthenticator(MLWorkshopAuthenticator):
    """The native authenticator's checks of who is at the other end, with the SSO's name instead
    of a password. No signup, no passwords, no accounts pages: the SSO owns who people are."""

    username_header = Unicode("X-Remote-User").tag(config=True)
    trusted_proxies = List(Unicode()).tag(config=True)
    whoami_url = Unicode("").tag(config=True)
    username_field = Unicode("username").tag(config=True)
    forward_cookies = List(Unicode()).tag(config=True)
    sso_login_url = Unicode("").tag(config=True)
    whoami_timeout = Float(10).tag(config=True)

    _unsafe: list[str] | None = None

    def check_allowed(self, username: str, authentication: dict | None = None) -> bool:
        return True  # whoever the SSO vouches for (auth_header: allow_all)

    async def add_user(self, user):
        """No native account: the SSO is where people are. Only JupyterHub's own bookkeeping."""
        if not self.validate_username(user.name):
            raise ValueError(f"Invalid username: {user.name}")
        if self.allow_existing_users and not self.allow_all:
            self.allowed_users.add(user.name)

    def delete_user(self, user) -> None:
        self.allowed_users.discard(user.name)

    def get_handlers(self, app):
        return [(r"/login", HeaderLoginHandler)]

    # --- who says so ----------------------------------------------------------------------
    def unsafe_proxies(self) -> list[str]:
        """Trusted proxy networks holding an address of this machine, under a root hub (where
        local accounts must not be able to pose as the proxy). Worked out once."""
        if self._unsafe is None:
            self._unsafe = local_trusted(self.trusted_proxies) if self.proxy_account else []
            if self._unsafe:
                self.log.error(
                    "auth.header.trusted_proxies %s hold addresses of this machine: every local "
                    "account could connect from them and name any user, so header sign-in is "
                    "refused. Run the reverse proxy on another machine (its address as the hub "
                    "sees it), or use auth.header.whoami_url.",
                    ", ".join(self._unsafe),
                )
        return self._unsafe

    async def name_from_header(self, handler) -> str:
        request = handler.request
        claimed = request.headers.get(self.username_header, "")
        if self.unsafe_proxies():
            raise web.HTTPError(
                503,
                _("Sign-in is switched off: the hub's SSO setting is unsafe (see the hub log)."),
            )
        through = await self.through_proxy(handler)
        peer = _address(client_address(handler, through))
        trusted = (
            through
            and peer is not None
            and any(peer in ipaddress.ip_network(net, strict=False) for net in self.trusted_proxies)
        )
        if not trusted:
            if claimed:
                self.log.warning(
                    "Refused %s header %r from %s (%s): not from a trusted proxy",
                    self.username_header,
                    claimed[:64],
                    peer,
                    "through the proxy" if through else f"straight from {_peer_ip(request)}",
                )
            raise web.HTTPError(
                403,
                _(
                    "Sign in through your organisation's sign-in page: this address does not take "
                    "sign-ins directly."
                ),
            )
        if not claimed:
            raise NotSignedIn()
        return claimed

    async def name_from_whoami(self, handler) -> str:
        wanted = set(self.forward_cookies)
        jar = SimpleCookie()
        try:
            jar.load(handler.request.headers.get("Cookie", ""))
        except Exception:  # a malformed header: nothing forwarded
            jar = SimpleCookie()
        cookies = "; ".join(
            f"{name}={morsel.coded_value}"
            for name, morsel in jar.items()
            if (name in wanted if wanted else not name.startswith(HUB_COOKIES))
        )
        if not cookies:
            raise NotSignedIn()
        request = HTTPRequest(
            self.whoami_url,
            headers={"Cookie": cookies, "Accept": "application/json"},
            request_timeout=self.whoami_timeout,
            connect_timeout=self.whoami_timeout,
            follow_redirects=False,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (TimeoutError, OSError, HTTPClientError) as exc:
            self.log.error("The who-am-I service %s did not answer: %s", self.whoami_url, exc)
            raise web.HTTPError(503, _(NOT_ANSWERING)) from None
        if response.code in (401, 403) or 300 <= response.code < 400:
            raise NotSignedIn()
        if response.code != 200:
            self.log.error(
                "The who-am-I service %s answered %s: %s",
                self.whoami_url,
                response.code,
                (response.body or b"")[:200],
            )
            raise web.HTTPError(503, _(NOT_ANSWERING))
        try:
            name = json.loads(response.body)[self.username_field]
            if not isinstance(name, str):
                raise TypeError(type(name).__name__)
        except (ValueError, KeyError, TypeError) as exc:
            self.log.error(
                "The who-am-I service %s answered without a %r string (%s)",
                self.whoami_url,
                self.username_field,
                exc,
            )
            raise web.HTTPError(
                503, _("The sign-in service gave an answer the hub cannot read.")
            ) from None
        if not name:
            raise NotSignedIn()
        return name

    async def authenticate(self, handler, data=None):
        claimed = await (
            self.name_from_whoami(handler) if self.whoami_url else self.name_from_header(handler)
        )
        try:
            name = normalize_username(claimed)
        except BadUsername as exc:
            self.log.warning("Refused SSO user %r: %s", claimed[:64], exc)
            raise web.HTTPError(
                403,
                _(
                    "Your sign-in name {name} cannot be used here: {reason} Ask the lab admin "
                    "for an account name that fits."
                ).format(name=repr(claimed[:64]), reason=exc),
            ) from None
        if name in self.reserved_names:
            raise web.HTTPError(
                403, _("The name {name} is reserved on this hub.").format(name=repr(name))
            )
        # admins: auth.admin_users, or whoever the CLI promoted (the hub's own flag stays)
        return {"name": name, "admin": True if name in self.admin_users else None}


class HeaderLoginHandler(BaseHandler):
    """/hub/login: sign in with what the SSO says, or go to its login page."""

    async def get(self):
        user = self.current_user
        if user:
            self.set_login_cookie(user)
            return self.redirect(self.get_next_url(user), permanent=False)
        auth: HeaderAuthenticator = self.authenticator
        try:
            user = await self.login_user()
        except NotSignedIn:
            if auth.sso_login_url:
                back = f"{self.request.protocol}://{self.request.host}{self.request.uri}"
                target = auth.sso_login_url
                target = (
                    target.replace("{next}", quote(back, safe="")) if "{next}" in target else target
                )
                return self.redirect(target, permanent=False)
            raise web.HTTPError(
                401, _("You are not signed in. Sign in through your organisation's sign-in page.")
            ) from None
        if user is None:
            raise web.HTTPError(403, _("Sign-in refused."))
        self.redirect(self.get_next_url(user), permanent=False)
