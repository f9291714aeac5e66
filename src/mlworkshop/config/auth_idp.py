"""Institutional sign-in: auth.oidc, auth.github, auth.azuread and auth.ldap (auth.method picks one).

The OAuth and LDAP work is oauthenticator's and ldapauthenticator's; these sections hold only
what a lab admin decides: where the provider is, who may log in, who is an admin, which groups
become JupyterHub groups. Client secrets and bind passwords are not here: `mlworkshop auth secret
set METHOD` keeps them in <site>/secrets/ (0600), so mlworkshop.yaml can be shared or committed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from .base import Section


def _http_url(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if not value.startswith(("https://", "http://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


class IdPCommon(Section):
    """What every identity provider maps onto: who may log in, admins, groups, usernames."""

    allowed_groups: list[str] = Field(
        default_factory=list,
        description="Provider groups whose members may log in (e.g. [students, staff]). Empty: "
        "everyone the provider signs in for this hub (for oidc and azuread: everyone the "
        "provider lets use this client; github needs allowed_organizations instead).",
    )
    admin_groups: list[str] = Field(
        default_factory=list,
        description="Provider groups whose members are hub admins (they may also log in). Admin "
        "rights follow the group at every login. auth.admin_users are admins as well.",
    )
    keep_email_domain: bool = Field(
        False,
        description="Keep the domain of an e-mail-like sign-in name in the account name "
        "(Jane.Doe@uni.edu -> jane_doe_uni_edu instead of jane_doe). Turn on when people of "
        "several domains sign in.",
    )
    refresh_seconds: int = Field(
        300,
        ge=0,
        le=86400,
        description="How often (seconds) a signed-in user's groups are asked of the provider again; "
        "one no longer allowed must sign in again, and is refused. 0: only at login.",
    )


class OIDCConfig(IdPCommon):
    issuer: str | None = Field(
        None,
        description="The provider's issuer URL (e.g. https://login.uni.edu/realms/main); its "
        "/.well-known/openid-configuration names the endpoints. Or set the three URLs below.",
    )
    authorize_url: str | None = Field(
        None, description="Authorization endpoint (empty: from the issuer's discovery document)."
    )
    token_url: str | None = Field(
        None, description="Token endpoint (empty: from the issuer's discovery document)."
    )
    userinfo_url: str | None = Field(
        None, description="Userinfo endpoint (empty: from the issuer's discovery document)."
    )
    client_id: str = Field(
        "",
        description="The hub's client ID at the provider. Its secret: `mlworkshop auth secret set "
        "oidc`. The provider must accept <hub address>/hub/oauth_callback as redirect URI.",
    )
    callback_url: str | None = Field(
        None,
        description="The redirect URI as registered at the provider, e.g. "
        "https://hub.uni.edu/hub/oauth_callback. Empty: worked out from each request.",
    )
    scopes: list[str] = Field(
        default_factory=lambda: ["openid", "profile", "email"],
        description="Scopes asked for; add the one your provider needs for a groups claim.",
    )
    username_claim: str = Field(
        "preferred_username",
        description="Userinfo claim the account name is made from (e.g. preferred_username, email).",
    )
    subject_claim: str = Field(
        "sub",
        description="Userinfo claim that names a person for good (OIDC: sub). The account made at "
        "their first login stays theirs, even if their username claim changes later.",
    )
    groups_claim: str = Field(
        "groups", description="Userinfo claim holding the user's groups (a list of names)."
    )
    login_service: str = Field(
        "your institution", description="Shown on the login button: Sign in with <this>."
    )
    tls_verify: bool = Field(True, description="Check the provider's HTTPS certificate.")

    @field_validator("issuer", "authorize_url", "token_url", "userinfo_url", "callback_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return _http_url(value)


class GitHubConfig(IdPCommon):
    client_id: str = Field(
        "",
        description="Client ID of the hub's GitHub OAuth app (secret: `mlworkshop auth secret set "
        "github`). Its callback URL: <hub address>/hub/oauth_callback.",
    )
    callback_url: str | None = Field(
        None,
        description="The OAuth app's callback URL, e.g. https://hub.uni.edu/hub/oauth_callback. "
        "Empty: worked out from each request.",
    )
    allowed_organizations: list[str] = Field(
        default_factory=list,
        description="GitHub organizations (my-org) or teams (my-org:students) whose members may log "
        "in. Required: GitHub has every developer in the world.",
    )
    admin_groups: list[str] = Field(
        default_factory=list,
        description="GitHub teams, as org:team-slug, whose members are hub admins.",
    )
    allowed_groups: list[str] = Field(
        default_factory=list,
        description="GitHub teams, as org:team-slug, whose members may log in (besides "
        "allowed_organizations).",
    )
    github_url: str | None = Field(
        None, description="GitHub Enterprise Server's address. Empty: github.com."
    )

    @field_validator("callback_url", "github_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return _http_url(value)


class AzureADConfig(IdPCommon):
    tenant_id: str = Field("", description="The directory (tenant) ID; only its users can sign in.")
    client_id: str = Field(
        "",
        description="Application (client) ID of the hub's app registration (secret: `mlworkshop "
        "auth secret set azuread`). Its redirect URI: <hub address>/hub/oauth_callback.",
    )
    callback_url: str | None = Field(
        None,
        description="The app's redirect URI, e.g. https://hub.uni.edu/hub/oauth_callback. Empty: "
        "worked out from each request.",
    )
    username_claim: str = Field(
        "preferred_username",
        description="ID token claim the account name is made from (preferred_username: the "
        "user's sign-in name, e.g. jane.doe@uni.edu -> jane_doe).",
    )
    groups_claim: str = Field(
        "groups",
        description="ID token claim with the user's groups (object IDs, unless the app registration "
        "emits names); allowed_groups and admin_groups use the same values.",
    )

    @field_validator("callback_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return _http_url(value)


class LDAPConfig(IdPCommon):
    server_url: str = Field(
        "",
        description="The directory server: ldap://host[:port] (TLS by StartTLS, see tls) or "
        "ldaps://host[:port].",
    )
    tls: Literal["starttls", "ldaps", "none"] = Field(
        "starttls",
        description="How the password travels: starttls (upgrade the connection before binding), "
        "ldaps (TLS from the start; an ldaps:// URL means this) or none (plain text: only for a "
        "directory on this machine).",
    )
    ca_file: str | None = Field(
        None, description="CA certificate (PEM) the server's certificate must chain to."
    )
    bind_dn_template: list[str] = Field(
        default_factory=list,
        description="DNs a user binds as, {username} standing for what they typed, e.g. "
        "uid={username},ou=people,dc=uni,dc=edu. Empty: look the user up (search_base).",
    )
    search_base: str | None = Field(
        None,
        description="Where users are looked up when bind_dn_template is empty, e.g. "
        "ou=people,dc=uni,dc=edu; searched as search_bind_dn (password: `mlworkshop auth "
        "secret set ldap`).",
    )
    search_bind_dn: str | None = Field(
        None, description="The DN the lookup binds as (empty: an anonymous lookup)."
    )
    user_attribute: str = Field(
        "uid", description="Attribute matched against what users type (AD: sAMAccountName)."
    )
    allowed_groups: list[str] = Field(
        default_factory=list,
        description="DNs of groups whose members may log in, e.g. "
        "cn=ml-class,ou=groups,dc=uni,dc=edu. Empty: everyone who can bind.",
    )
    admin_groups: list[str] = Field(
        default_factory=list, description="DNs of groups whose members are hub admins."
    )
    groups: list[str] = Field(
        default_factory=list,
        description="More group DNs to mirror as JupyterHub groups (named by their first value, "
        "cn=gpu-users,... -> gpu-users) so quotas and profiles per group apply; allowed and admin "
        "groups are mirrored too.",
    )

    @field_validator("server_url")
    @classmethod
    def _ldap_url(cls, value: str) -> str:
        if value and not value.startswith(("ldap://", "ldaps://")):
            raise ValueError("must be an ldap:// or ldaps:// URL, e.g. ldaps://ldap.uni.edu")
        return value
