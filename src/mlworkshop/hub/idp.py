"""Institutional sign-in: OIDC, GitHub, Azure AD (oauthenticator 17) and LDAP (ldapauthenticator 2).

The protocols are the libraries'; what is added here is what mlworkshop's native accounts give
and those libraries do not:
- one account per person, made by the project's name rule (names.account_name_from_idp) and
  remembered by the provider's subject (accounts/idp_links.py): stable when the person's name
  changes, and a second person whose name gives the same account is refused, never merged;
- a page that says why when someone may not log in (which groups admit them), and when the
  provider is down or refuses the hub's credentials (the admin gets a hub log line saying what to
  check), instead of a traceback or a redirect loop;
- provider groups as JupyterHub groups (manage_groups), so quotas and spawn profiles per group
  apply, re-checked at every login and, for OAuth, every auth_refresh_age seconds: someone taken
  out of the allowed groups has to sign in again, and is refused.
Accounts are hub users like native ones: the spawner makes each one's system account
(<prefix><name>) and folders the same way at their first server start.
"""

from __future__ import annotations

import asyncio
import json
from inspect import isawaitable

from ldap3.core.exceptions import LDAPException
from ldapauthenticator import LDAPAuthenticator
from oauthenticator.azuread import AzureAdOAuthenticator
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.github import GitHubOAuthenticator
from oauthenticator.oauth2 import OAuthCallbackHandler, OAuthLoginHandler
from tornado import web
from tornado.escape import xhtml_escape
from tornado.httpclient import HTTPClientError
from traitlets import Bool, HasTraits, List, Unicode, default

from ..accounts.idp_links import AccountTaken, IdPLinks
from ..accounts.store import DatabaseUnavailable
from ..i18n import _
from ..names import BadUsername, account_name_from_idp, normalize_username

PROBE_TIMEOUT = 5  # seconds: a provider that does not answer a discovery GET in 5 s is "down"


def provider_down_message(service: str) -> str:
    return _(
        "Signing in is not possible right now: {service} (the sign-in service) is not answering. "
        "Try again in a few minutes; if it goes on, tell your administrator."
    ).format(service=service)


class IdPMixin(HasTraits):
    """The part every institutional authenticator shares (mixed in before the library's class)."""

    mlw_provider = Unicode(
        help="Key of this provider's people in mlw_idp_links (oidc, github, azuread, ldap)."
    ).tag(config=True)
    mlw_db_url = Unicode(help="The hub database, which holds mlw_idp_links.").tag(config=True)
    mlw_subject_key = Unicode(
        "sub", help="Key in the provider's user info that names a person for good."
    ).tag(config=True)
    mlw_keep_email_domain = Bool(
        False, help="Keep an e-mail-like name's domain in the account name."
    ).tag(config=True)
    mlw_allowed_names = List(
        Unicode(), help="What admits people, as the refusal page names it (groups, orgs)."
    ).tag(config=True)
    mlw_secret_name = Unicode(
        help="The secret's name for `mlworkshop auth secret set` (in the admin's log lines)."
    ).tag(config=True)

    _links: IdPLinks | None = None

    @property
    def links(self) -> IdPLinks:
        if self._links is None:
            self._links = IdPLinks(self.mlw_db_url)
        return self._links

    # --- names ---------------------------------------------------------------------------
    def normalize_username(self, username: str) -> str:
        """Account names are already valid and stay as they are; a provider's raw name becomes one
        by the project's rule (the account it really gets is decided by link_account)."""
        try:
            return account_name_from_idp(username, self.mlw_keep_email_domain)
        except BadUsername:
            return username.strip().lower()  # refused by validate_username

    def validate_username(self, username: str) -> bool:
        try:
            return normalize_username(username) == username
        except BadUsername:
            return False

    async def link_account(
        self, auth_model: dict, subject: str, idp_name: str, record: bool = False
    ) -> dict:
        """Put the person's own account in auth_model['name']: the one tied to them, or the one
        their name gives if nobody else has it. Tied to them (record) only once they are admitted
        (record_account, from check_allowed)."""
        try:
            wanted = account_name_from_idp(idp_name, self.mlw_keep_email_domain)
        except BadUsername as exc:
            self.log.error("Sign-in refused: %s user %r: %s", self.mlw_provider, idp_name, exc)
            raise web.HTTPError(
                403,
                _(
                    "{reason} Ask your administrator: this hub cannot make a username from your "
                    "sign-in name."
                ).format(reason=exc),
            ) from None
        try:
            name = await asyncio.to_thread(
                self.links.claim, self.mlw_provider, str(subject), wanted, idp_name, record
            )
        except AccountTaken as exc:
            self.log.error("Sign-in refused: %s", exc)
            raise web.HTTPError(403, exc.user_message) from None
        except DatabaseUnavailable as exc:
            self.log.error("Sign-in failed: %s", exc)
            raise web.HTTPError(
                503, _("The hub cannot reach its database; try again soon.")
            ) from None
        auth_model["name"] = name
        state = auth_model.setdefault("auth_state", {})
        state["mlw_subject"], state["mlw_idp_name"] = str(subject), idp_name
        if name in self.admin_users:
            auth_model["admin"] = True
        return auth_model

    async def record_account(self, auth_model: dict) -> None:
        """The person is admitted: tie the account to them now (refused if someone was quicker)."""
        state = auth_model.get("auth_state") or {}
        await self.link_account(auth_model, state["mlw_subject"], state["mlw_idp_name"], True)

    def refusal(self, idp_name: str) -> web.HTTPError:
        admitted = ", ".join(self.mlw_allowed_names) or _("a list the administrator keeps")
        return web.HTTPError(
            403,
            _(
                "You signed in as {name}, but this hub admits only members of: {admitted}. "
                "If you should have access, ask your instructor to add you."
            ).format(name=idp_name, admitted=admitted),
        )


# --- OAuth: OIDC, GitHub, Azure AD ---------------------------------------------------------
class IdPLoginHandler(OAuthLoginHandler):
    """/hub/oauth_login: asks the provider first; when it is down, the login page says so."""

    async def get(self):
        problem = await self.authenticator.provider_problem()
        if problem is None:
            return super().get()
        self.set_status(503)
        sign_in = _("Sign in with {service}").format(service=self.authenticator.login_service)
        retry = self.request.uri  # a link the person clicks, never a redirect: no loop
        html = (
            '<div class="service-login">'
            f'<p class="login_error alert alert-danger" id="idp-error">{xhtml_escape(problem)}</p>'
            f'<a role="button" class="btn btn-jupyter btn-lg" href="{xhtml_escape(retry)}">'
            f"{xhtml_escape(sign_in)}</a></div>"
        )
        page = self.render_template(
            "login.html",
            next=self.get_argument("next", ""),
            username=None,
            login_error=problem,
            login_url=self.settings["login_url"],
            authenticator_login_url=retry,
            authenticator=self.authenticator,
            xsrf=self.xsrf_token.decode("ascii"),
            custom_html=html,
        )
        self.finish(await page if isawaitable(page) else page)


class IdPCallbackHandler(OAuthCallbackHandler):
    """/hub/oauth_callback: an error the provider sends back is shown as a sentence."""

    def check_error(self):
        error = self.get_argument("error", "")
        if error:
            detail = self.get_argument("error_description", error)
            self.log.warning("The sign-in service answered the callback with: %s", detail)
            raise web.HTTPError(
                403,
                _(
                    "The sign-in service did not sign you in ({detail}). Go back to the hub's "
                    "login page to try again."
                ).format(detail=detail[:200]),
            )


class OAuthIdPMixin(IdPMixin):
    login_handler = IdPLoginHandler
    callback_handler = IdPCallbackHandler

    mlw_discovery_url = Unicode(
        "", help="OIDC discovery document; the endpoints not configured come from it."
    ).tag(config=True)

    _discovered = False

    # --- the provider's endpoints and whether it answers ----------------------------------
    async def _get(self, url: str):
        return await self.http_client.fetch(
            url,
            raise_error=False,
            connect_timeout=PROBE_TIMEOUT,
            request_timeout=PROBE_TIMEOUT,
            validate_cert=self.validate_server_cert,
        )

    async def provider_problem(self) -> str | None:
        """None when the provider answers (and its endpoints are known); else a sentence for the
        login page. Logs what the admin should check."""
        url = self.mlw_discovery_url or self.authorize_url
        try:
            response = await self._get(url)
        except (OSError, HTTPClientError) as exc:
            self.log.warning("The sign-in service at %s does not answer: %s", url, exc)
            return provider_down_message(self.login_service)
        if response.code >= 500 or (self.mlw_discovery_url and response.code != 200):
            self.log.warning("The sign-in service at %s answered HTTP %s", url, response.code)
            return provider_down_message(self.login_service)
        if self.mlw_discovery_url and not self._discovered:
            try:
                document = json.loads(response.body)
                for trait, key in (
                    ("authorize_url", "authorization_endpoint"),
                    ("token_url", "token_endpoint"),
                    ("userdata_url", "userinfo_endpoint"),
                ):
                    if not getattr(self, trait):
                        setattr(self, trait, document[key])
            except (ValueError, KeyError, TypeError) as exc:
                self.log.error(
                    "%s is not an OpenID Connect discovery document (%s): check auth.oidc.issuer.",
                    url,
                    exc,
                )
                return provider_down_message(self.login_service)
            self._discovered = True
        return None

    async def _ensure_endpoints(self) -> None:
        if self.mlw_discovery_url and not self._discovered:
            problem = await self.provider_problem()
            if problem:
                raise web.HTTPError(503, problem)

    async def get_token_info(self, handler, params):
        await self._ensure_endpoints()
        try:
            return await super().get_token_info(handler, params)
        except HTTPClientError as exc:
            response = getattr(exc, "response", None)
            if response is None or exc.code >= 500:
                self.log.warning("The token endpoint %s does not answer: %s", self.token_url, exc)
                raise web.HTTPError(503, provider_down_message(self.login_service)) from None
            try:
                error = json.loads(response.body).get("error", "")
            except (ValueError, AttributeError):
                error = ""
            if exc.code == 401 or error in ("invalid_client", "unauthorized_client"):
                self.log.error(
                    "%s refused the hub's client credentials (HTTP %s %s) at %s. Check auth.%s."
                    "client_id (%r) and the client secret: `mlworkshop auth secret set %s`, then "
                    "restart the hub.",
                    self.login_service,
                    exc.code,
                    error or "",
                    self.token_url,
                    self.mlw_provider,
                    self.client_id,
                    self.mlw_secret_name or self.mlw_provider,
                )
                raise web.HTTPError(
                    503,
                    _(
                        "Signing in with {service} is not working: it did not accept this hub's "
                        "credentials. Your administrator has to fix the hub's settings (the hub's "
                        "log says what); please tell them."
                    ).format(service=self.login_service),
                ) from None
            self.log.warning("Token request refused: HTTP %s %s", exc.code, error)
            raise web.HTTPError(
                400, _("Signing in took too long or was interrupted. Please sign in again.")
            ) from None
        except OSError as exc:
            self.log.warning("The token endpoint %s does not answer: %s", self.token_url, exc)
            raise web.HTTPError(503, provider_down_message(self.login_service)) from None

    async def token_to_user(self, token_info):
        await self._ensure_endpoints()
        try:
            return await super().token_to_user(token_info)
        except OSError as exc:
            self.log.warning("The userinfo endpoint %s does not answer: %s", self.userdata_url, exc)
            raise web.HTTPError(503, provider_down_message(self.login_service)) from None
        except HTTPClientError as exc:
            if exc.code >= 500 or getattr(exc, "response", None) is None:
                raise web.HTTPError(503, provider_down_message(self.login_service)) from None
            raise

    # --- who is who ------------------------------------------------------------------------
    def idp_identity(self, auth_model: dict) -> tuple[str, str]:
        """(subject, the provider's name for the person) from the auth model's user info."""
        info = (auth_model.get("auth_state") or {}).get(self.user_auth_state_key) or {}
        idp_name = str(self.user_info_to_username(info))
        subject = info.get(self.mlw_subject_key)
        if subject in (None, ""):
            raise web.HTTPError(
                403,
                _(
                    "The sign-in service sent no {key} for you; the hub cannot tell who you are. "
                    "Please tell your administrator."
                ).format(key=repr(self.mlw_subject_key)),
            )
        return str(subject), idp_name

    async def update_auth_model(self, auth_model):
        auth_model = await super().update_auth_model(auth_model)
        subject, idp_name = self.idp_identity(auth_model)
        return await self.link_account(auth_model, subject, idp_name)

    async def check_allowed(self, username, auth_model):
        allowed = await super().check_allowed(username, auth_model)
        if auth_model is None:
            return allowed
        if allowed:
            await self.record_account(auth_model)
            return True
        idp_name = (auth_model.get("auth_state") or {}).get("mlw_idp_name", username)
        self.log.info("Sign-in refused: %s (%s) is in no allowed group", username, idp_name)
        raise self.refusal(idp_name)

    async def refresh_user(self, user, handler=None, **kwargs):
        """The library's refresh (new tokens, fresh user info and groups), then the allow check
        again: someone taken out of every allowed group must sign in again, and is refused then.
        While the provider is down, people who are signed in stay signed in."""
        if handler is not None and not hasattr(handler, "_token_authenticated"):
            # JupyterHub 6.1.1 sets this only for token requests, and reads it when a refresh
            # fails: a browser (cookie) request then ended in a 500 instead of a new sign-in
            handler._token_authenticated = False
        try:
            refreshed = await super().refresh_user(user, handler, **kwargs)
        except web.HTTPError as exc:
            if exc.status_code == 503:
                self.log.warning("Could not re-check %s: %s", user.name, exc.log_message)
                return True
            raise
        if isinstance(refreshed, dict):
            if refreshed.get("name") != user.name:
                self.log.warning(
                    "Refresh of %s named account %s: sign-in required", user.name, refreshed["name"]
                )
                return False
            if not await super().check_allowed(user.name, refreshed):
                self.log.warning(
                    "%s is no longer in an allowed group: signed out; the next sign-in is refused",
                    user.name,
                )
                return False
        return refreshed


class GenericIdPAuthenticator(OAuthIdPMixin, GenericOAuthenticator):
    """auth.method: oidc"""


def github_team_groups(auth_state: dict) -> list[str]:
    """A GitHub user's teams as JupyterHub groups, named org:team-slug."""
    return [
        f"{team['organization']['login']}:{team['slug']}".lower()
        for team in auth_state.get("teams") or []
        if team.get("organization", {}).get("login") and team.get("slug")
    ]


class GitHubIdPAuthenticator(OAuthIdPMixin, GitHubOAuthenticator):
    """auth.method: github"""


class AzureAdIdPAuthenticator(OAuthIdPMixin, AzureAdOAuthenticator):
    """auth.method: azuread"""


# --- LDAP --------------------------------------------------------------------------------
def group_name_from_dn(dn: str) -> str:
    """cn=gpu-users,ou=groups,dc=uni,dc=edu -> gpu-users: the JupyterHub group a directory group
    becomes (quotas and profiles name it so)."""
    first = dn.split(",", 1)[0]
    return first.split("=", 1)[-1].strip()


class LDAPIdPAuthenticator(IdPMixin, LDAPAuthenticator):
    """auth.method: ldap. The library binds as the user and tests membership of every group
    named in its allowed_groups (set to all groups mlworkshop cares about); which of those
    admit, make admins, or only become JupyterHub groups is decided here."""

    mlw_allowed_dns = List(Unicode(), help="Group DNs whose members may log in.").tag(config=True)
    mlw_admin_dns = List(Unicode(), help="Group DNs whose members are admins.").tag(config=True)

    @default("valid_username_regex")
    def _sign_in_names(self):
        """What people type, as their directory knows them (Jane.Doe, jdoe@uni.edu): the library
        escapes it (RFC 4514/4515) before it reaches a DN or a filter, and the account name is
        made from it by the project's rule."""
        return r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"

    async def authenticate(self, handler, data):
        # ldap3 blocks: the library's coroutine runs to its end on a worker thread's own loop
        try:
            model = await asyncio.to_thread(
                asyncio.run, LDAPAuthenticator.authenticate(self, handler, data)
            )
        except LDAPException as exc:
            self.log.error(
                "The LDAP server %s:%s cannot be used: %s: %s. Check auth.ldap.server_url, "
                "that the server runs, and auth.ldap.tls / ca_file.",
                self.server_address,
                self.server_port,
                type(exc).__name__,
                exc,
            )
            raise web.HTTPError(
                503,
                _(
                    "Signing in is not possible right now: the directory server that checks "
                    "passwords is not answering. Try again in a few minutes; if it goes on, tell "
                    "your administrator."
                ),
            ) from None
        if model is None:
            return None
        idp_name = model["name"]
        model = await self.link_account(model, idp_name.strip().lower(), idp_name)
        dns = set(model["auth_state"].get("ldap_groups") or [])
        model["groups"] = sorted({group_name_from_dn(dn) for dn in dns})
        if model.get("admin") is not True and self.mlw_admin_dns:
            model["admin"] = bool(dns & set(self.mlw_admin_dns))
        return model

    async def check_allowed(self, username, auth_model):
        if auth_model is None:
            return True
        dns = set((auth_model.get("auth_state") or {}).get("ldap_groups") or [])
        if (
            not self.mlw_allowed_dns
            or auth_model.get("admin")
            or username in self.allowed_users
            or dns & set(self.mlw_allowed_dns)
        ):
            await self.record_account(auth_model)
            return True
        idp_name = auth_model["auth_state"].get("mlw_idp_name", username)
        self.log.info("Sign-in refused: %s (%s) is in no allowed group", username, idp_name)
        raise self.refusal(idp_name)
