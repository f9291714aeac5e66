"""auth.method oidc | github | azuread | ldap mapped onto the authenticators of hub/idp.py: pure
functions that only set values (and read the site's secrets), like the rest of hub/configure.py.

`check_idp_config` says, before the hub starts, what is missing (a client ID, a secret, an
issuer); `mlworkshop up` prints it and stops, so the admin never meets a traceback.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlparse

from traitlets.config import Config

from ..config import MLWorkshopConfig
from ..site import Site

IDP_METHODS = ("oidc", "github", "azuread", "ldap")
CLASSES = {
    "oidc": "GenericIdPAuthenticator",
    "github": "GitHubIdPAuthenticator",
    "azuread": "AzureAdIdPAuthenticator",
    "ldap": "LDAPIdPAuthenticator",
}


class IdPConfigError(ValueError):
    """str() says what to set, with the command."""


def secret_name(method: str) -> str:
    """The file in <site>/secrets/ that `mlworkshop auth secret set METHOD` writes."""
    return "ldap_bind_password" if method == "ldap" else f"{method}_client_secret"


def read_idp_secret(site: Site, method: str) -> str | None:
    try:
        return (site.secrets / secret_name(method)).read_text().strip() or None
    except FileNotFoundError:
        return None


def check_idp_config(cfg: MLWorkshopConfig, site: Site) -> list[str]:
    """What keeps auth.method's provider from working, each with how to fix it ([] when ready)."""
    method = cfg.auth.method
    if method not in IDP_METHODS:
        return []
    section = getattr(cfg.auth, method)
    problems = []
    set_cmd = f"`mlworkshop config set auth.{method}."
    if method == "ldap":
        if not section.server_url:
            problems.append(f"auth.ldap.server_url is empty: {set_cmd}server_url ldaps://HOST`.")
        if not section.bind_dn_template and not section.search_base:
            problems.append(
                "Set auth.ldap.bind_dn_template (e.g. uid={username},ou=people,dc=uni,dc=edu) "
                "or auth.ldap.search_base."
            )
        if section.search_bind_dn and read_idp_secret(site, method) is None:
            problems.append(
                "auth.ldap.search_bind_dn needs its password: `mlworkshop auth secret set ldap`."
            )
        return problems
    if not section.client_id:
        problems.append(f"auth.{method}.client_id is empty: {set_cmd}client_id ID`.")
    if read_idp_secret(site, method) is None:
        problems.append(
            f"The {method} client secret is not set: `mlworkshop auth secret set {method}` "
            "(it is kept in the site's secrets/, not in mlworkshop.yaml)."
        )
    if method == "oidc" and not section.issuer:
        missing = [
            k for k in ("authorize_url", "token_url", "userinfo_url") if not getattr(section, k)
        ]
        if missing:
            problems.append(
                f"Set auth.oidc.issuer (its discovery document names the endpoints), or all of "
                f"auth.oidc.authorize_url, token_url and userinfo_url (missing: {', '.join(missing)})."
            )
    if method == "github" and not (section.allowed_organizations or section.allowed_groups):
        problems.append(
            "auth.github.allowed_organizations is empty, which would admit every GitHub user: "
            f"{set_cmd}allowed_organizations '[my-org]'`."
        )
    if method == "azuread" and not section.tenant_id:
        problems.append(f"auth.azuread.tenant_id is empty: {set_cmd}tenant_id TENANT-ID`.")
    return problems


def _auth_state_key(site: Site) -> bytes:
    """auth_state (the provider's tokens, for refreshing groups) is encrypted with a key derived
    from the cookie secret `init` made, so no further file is needed."""
    cookie = site.read_secret("cookie_secret").encode()
    return hashlib.sha256(b"mlworkshop auth_state key\0" + cookie).digest()


def apply_idp_auth(c: Config, cfg: MLWorkshopConfig, site: Site, reserved: list[str]) -> None:
    method = cfg.auth.method
    section = getattr(cfg.auth, method)
    cls = CLASSES[method]
    c.JupyterHub.authenticator_class = f"mlworkshop.hub.idp.{cls}"
    a = c[cls]
    a.mlw_provider = method
    a.mlw_db_url = site.db_url(cfg)
    a.mlw_keep_email_domain = section.keep_email_domain
    a.mlw_secret_name = method
    a.admin_users = set(cfg.auth.admin_users)
    a.blocked_users = set(reserved)  # service names and log sources are nobody's account
    a.manage_groups = True  # provider groups become JupyterHub groups (quotas, profiles)
    a.auth_refresh_age = section.refresh_seconds
    a.refresh_pre_spawn = section.refresh_seconds > 0 and method != "ldap"
    if method == "ldap":
        _apply_ldap(a, section, site)
        return
    secret = read_idp_secret(site, method)
    if secret:
        a.client_secret = secret
    a.client_id = section.client_id
    if section.callback_url:
        a.oauth_callback_url = section.callback_url
    a.enable_auth_state = True
    c.CryptKeeper["keys"] = [_auth_state_key(site)]  # (Config.keys is dict.keys)
    a.allowed_groups = set(section.allowed_groups)
    a.admin_groups = set(section.admin_groups)
    if method == "oidc":
        a.login_service = section.login_service
        if section.issuer:
            a.mlw_discovery_url = section.issuer.rstrip("/") + "/.well-known/openid-configuration"
        for trait, value in (
            ("authorize_url", section.authorize_url),
            ("token_url", section.token_url),
            ("userdata_url", section.userinfo_url),
        ):
            if value:
                a[trait] = value
        a.scope = list(section.scopes)
        a.username_claim = section.username_claim
        a.mlw_subject_key = section.subject_claim
        a.auth_state_groups_key = f"oauth_user.{section.groups_claim}"
        a.validate_server_cert = section.tls_verify
        a.basic_auth = True  # client_secret_basic: OIDC's default client authentication
        a.allow_all = not section.allowed_groups
        a.mlw_allowed_names = list(section.allowed_groups)
    elif method == "github":
        if section.github_url:
            a.github_url = section.github_url
        a.allowed_organizations = set(section.allowed_organizations)
        a.populate_teams_in_auth_state = True
        a.scope = ["read:org"]  # teams (groups) and private organization membership
        from .idp import github_team_groups

        a.auth_state_groups_key = github_team_groups
        a.mlw_subject_key = "id"
        a.allow_all = False
        a.mlw_allowed_names = [*section.allowed_organizations, *section.allowed_groups]
    else:  # azuread
        a.tenant_id = section.tenant_id
        a.username_claim = section.username_claim
        a.auth_state_groups_key = f"user.{section.groups_claim}"
        a.mlw_subject_key = "oid"
        a.scope = ["openid", "profile", "email"]
        a.allow_all = not section.allowed_groups
        a.mlw_allowed_names = list(section.allowed_groups)


def _apply_ldap(a, section, site: Site) -> None:
    url = urlparse(section.server_url)
    tls = "ldaps" if url.scheme == "ldaps" else section.tls
    a.server_address = url.hostname or ""
    a.server_port = url.port or (636 if tls == "ldaps" else 389)
    a.tls_strategy = {"starttls": "before_bind", "ldaps": "on_connect", "none": "insecure"}[tls]
    if section.ca_file:
        a.tls_kwargs = {"ca_certs_file": section.ca_file}
    if section.bind_dn_template:
        a.bind_dn_template = list(section.bind_dn_template)
    else:
        a.lookup_dn = True
        a.user_search_base = section.search_base or ""
        a.user_attribute = section.user_attribute
        a.lookup_dn_user_dn_attribute = section.user_attribute
        if section.search_bind_dn:
            a.lookup_dn_search_user = section.search_bind_dn
            a.lookup_dn_search_password = read_idp_secret(site, "ldap") or ""
    every = [*section.allowed_groups, *section.admin_groups, *section.groups]
    a.allowed_groups = list(dict.fromkeys(every))  # the library tests membership of each
    a.mlw_allowed_dns = list(section.allowed_groups)
    a.mlw_admin_dns = list(section.admin_groups)
    a.mlw_allowed_names = [dn.split(",", 1)[0].split("=", 1)[-1] for dn in section.allowed_groups]
    a.allow_all = not section.allowed_groups
