"""auth.header: sign-in by a company SSO in front of the hub (auth.method: header).

Two ways, as seed 002's cookie SSO had them:
- a reverse proxy that has signed the user in sets a username header; the hub believes it only
  from the configured proxy addresses (hub/auth_header.py says how it tells);
- a "who am I" URL the hub calls with the user's cookies, and a login URL it sends people to
  when that URL does not know them.
"""

from __future__ import annotations

import ipaddress
import re

from pydantic import Field, field_validator

from .base import Section

_HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}$")


class HeaderAuthConfig(Section):
    username_header: str = Field(
        "X-Remote-User",
        description="Header in which the reverse proxy names the signed-in user (it must set it "
        "itself, replacing whatever the browser sent: nginx `proxy_set_header X-Remote-User "
        "$remote_user;`). Believed only from trusted_proxies.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses (or networks, e.g. 10.0.0.0/24) of the reverse proxies allowed to "
        "name the user, as the hub's port sees them. A request from anywhere else with the header "
        "is refused. Under a root hub an address of this machine itself is refused: every local "
        "account could connect from it.",
    )
    whoami_url: str | None = Field(
        None,
        description="Instead of a header: a URL the hub calls (GET) with the user's cookies; it "
        "answers 200 with JSON naming the user (username_field), or 401/403 when they are not "
        "signed in. e.g. https://sso.example.edu/api/me",
    )
    username_field: str = Field(
        "username", description="Field of the who-am-I answer that holds the username."
    )
    cookies: list[str] = Field(
        default_factory=list,
        description="Names of the cookies passed to whoami_url (the company session's). Empty: "
        "every cookie except the hub's own.",
    )
    login_url: str | None = Field(
        None,
        description="Where someone not signed in is sent to sign in; {next} in it is replaced by "
        "the hub address to come back to (e.g. https://sso.example.edu/login?return={next}). "
        "Empty: they get a page that says to sign in through the company's portal.",
    )
    timeout: float = Field(
        10, gt=0, le=60, description="Seconds the hub waits for whoami_url to answer."
    )

    @field_validator("username_header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not _HEADER.match(value):
            raise ValueError("must be a header name such as X-Remote-User")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        out = []
        for raw in value:
            try:
                out.append(str(ipaddress.ip_network(raw.strip(), strict=False)))
            except ValueError:
                raise ValueError(
                    f"{raw!r} is not an IP address or network (e.g. 10.0.0.7 or 10.0.0.0/24)"
                ) from None
        return out

    @field_validator("whoami_url", "login_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    def problem(self) -> str | None:
        """What is missing for auth.method: header to work, or None."""
        if not self.whoami_url and not self.trusted_proxies:
            return (
                "auth.method is header, but neither auth.header.trusted_proxies (the reverse "
                "proxy that sets the username header) nor auth.header.whoami_url is set"
            )
        return None
