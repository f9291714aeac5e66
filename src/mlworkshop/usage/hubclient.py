"""The usage service's view of JupyterHub: its REST API, with the service's own token for
listing and stopping servers, and with a caller's token to find out who is calling.

Who may do what (decided here, enforced by the service's routes):
- a browser session (our OAuth cookie) of a hub admin: everything;
- an API token with `admin:users` (an admin's full token) or custom:mlworkshop-usage:admin:
  everything; with custom:mlworkshop-usage:read: read everyone's data;
- anyone else: read their own data only. No write endpoint is open to them.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx

SCOPE_READ = "custom:mlworkshop-usage:read"
SCOPE_ADMIN = "custom:mlworkshop-usage:admin"


@dataclass(frozen=True)
class Caller:
    name: str
    kind: str  # user | service
    admin: bool  # may write (quotas, stop servers, sessions)
    read_all: bool  # may read everyone's data
    groups: tuple[str, ...] = ()
    via: str = "token"  # token | cookie
    scopes: frozenset[str] = field(default_factory=frozenset)

    def may_read(self, username: str) -> bool:
        return self.read_all or (self.kind == "user" and self.name == username)


class HubClient:
    def __init__(self, api_url: str, token: str, cache_seconds: float = 30.0):
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.client = httpx.AsyncClient(headers={"Authorization": f"token {token}"}, timeout=15)
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Caller | None]] = {}

    async def aclose(self) -> None:
        await self.client.aclose()

    # --- the service's own calls -------------------------------------------------------------
    async def active_users(self) -> list[dict]:
        """Users with at least one server (running or pending), with their servers."""
        users: list[dict] = []
        offset, limit = 0, 200
        while True:
            response = await self.client.get(
                f"{self.api_url}/users",
                params={"state": "active", "offset": offset, "limit": limit},
            )
            response.raise_for_status()
            page = response.json()
            items = page["items"] if isinstance(page, dict) else page
            users.extend(items)
            if len(items) < limit:
                return users
            offset += limit

    async def user(self, name: str) -> dict | None:
        response = await self.client.get(f"{self.api_url}/users/{quote(name, safe='')}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    async def stop_server(self, username: str, server_name: str = "") -> int:
        user = quote(username, safe="")
        path = (
            f"/users/{user}/servers/{quote(server_name, safe='')}"
            if server_name
            else f"/users/{user}/server"
        )
        response = await self.client.delete(self.api_url + path)
        return response.status_code

    # --- who is calling -------------------------------------------------------------------------
    async def identify(self, token: str, via: str) -> Caller | None:
        """The caller behind a hub API token (or OAuth access token); None when the hub rejects it.
        Answers are cached for `cache_seconds` (keyed by a hash of the token)."""
        key = hashlib.sha256(f"{via}:{token}".encode()).hexdigest()
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached and now - cached[0] < self.cache_seconds:
            return cached[1]
        caller = await self._identify(token, via)
        if len(self._cache) > 10000:
            self._cache.clear()
        self._cache[key] = (now, caller)
        return caller

    async def _identify(self, token: str, via: str) -> Caller | None:
        response = await self.client.get(
            f"{self.api_url}/user", headers={"Authorization": f"token {token}"}
        )
        if response.status_code in (401, 403, 404):
            return None
        response.raise_for_status()
        model = response.json()
        scopes = frozenset(model.get("scopes") or ())
        kind = model.get("kind", "user")
        name = model.get("name", "")
        groups: tuple[str, ...] = ()
        is_hub_admin = False
        if kind == "user":
            full = await self.user(
                name
            )  # with the service's token: admin flag and groups, authoritative
            if full is None:
                return None
            is_hub_admin = bool(full.get("admin"))
            groups = tuple(full.get("groups") or ())
        admin = (
            SCOPE_ADMIN in scopes or "admin:users" in scopes or (via == "cookie" and is_hub_admin)
        )
        read_all = admin or SCOPE_READ in scopes
        return Caller(name, kind, admin, read_all, groups, via, scopes)

    async def exchange_code(self, code: str, client_id: str, redirect_uri: str) -> str | None:
        """OAuth: the authorization code for an access token (the service's token is its secret)."""
        response = await self.client.post(
            f"{self.api_url}/oauth2/token",
            data={
                "client_id": client_id,
                "client_secret": self.token,
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
            },
        )
        if response.status_code != 200:
            return None
        return response.json().get("access_token")
