"""Who is calling the usage service, and what they may do.

Authentication is JupyterHub's: browsers log in through the hub's OAuth (the access token is kept
in an HttpOnly cookie scoped to the service's prefix); scripts send a hub API token
(`Authorization: token ...`). Every token is checked with the hub (`GET /hub/api/user`), and the
caller's admin flag is read with the service's own token (see hubclient.py for the rules).
Writes made with the browser cookie also need the X-XSRF-Token header (double-submit cookie).

Routes take `caller: ApiCaller` (401 without credentials) or `caller: PageCaller` (a redirect to
the hub's login), then `need_read` / `need_read_all` / `need_admin`.
"""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from . import dashboard
from .context import Ctx
from .hubclient import Caller

COOKIE = "mlw-usage-token"
XSRF_COOKIE = "mlw-usage-xsrf"
STATE_COOKIE = "mlw-usage-state"


class NeedLogin(Exception):
    """A page was asked for without credentials: app.py answers with a redirect to oauth_login."""

    def __init__(self, next_url: str):
        self.next_url = next_url


async def caller_or_none(request: Request, ctx: Ctx) -> Caller | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if token and scheme.lower() in ("token", "bearer"):
        caller = await ctx.hub.identify(token.strip(), "token")
        if caller is None:
            raise HTTPException(403, "The hub does not accept this token.")
        return caller
    token = request.cookies.get(COOKIE)
    if token:
        caller = await ctx.hub.identify(token, "cookie")
        if caller is not None and request.method not in ("GET", "HEAD", "OPTIONS"):
            sent = request.headers.get("x-xsrf-token", "")
            if not sent or not secrets.compare_digest(sent, request.cookies.get(XSRF_COOKIE, "")):
                raise HTTPException(403, "Missing or wrong X-XSRF-Token header.")
        return caller
    return None


async def api_caller(caller: Annotated[Caller | None, Depends(caller_or_none)]) -> Caller:
    if caller is None:
        raise HTTPException(
            401, "Log in through the hub, or send a hub API token (Authorization: token ...)."
        )
    return caller


async def page_caller(
    request: Request, caller: Annotated[Caller | None, Depends(caller_or_none)]
) -> Caller:
    if caller is None:
        raise NeedLogin(
            str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
        )
    return caller


ApiCaller = Annotated[Caller, Depends(api_caller)]
PageCaller = Annotated[Caller, Depends(page_caller)]


def need_read(caller: Caller, username: str) -> None:
    if not caller.may_read(username):
        raise HTTPException(403, f"{caller.name} may not see {username}'s usage.")


def need_read_all(caller: Caller) -> None:
    if not caller.read_all:
        raise HTTPException(403, "Only administrators may see everyone's usage.")


def need_admin(caller: Caller) -> None:
    if not caller.admin:
        raise HTTPException(403, "Only administrators may change usage data.")


# --- OAuth with the hub (mounted at <prefix>) ----------------------------------------------------
router = APIRouter()


@router.get("/oauth_login", include_in_schema=False)
async def oauth_login(ctx: Ctx, next: str = ""):
    prefix, settings = ctx.prefix, ctx.settings
    state = secrets.token_urlsafe(24)
    target = next if next.startswith(prefix) else prefix
    query = urlencode(
        {
            "client_id": settings.client_id,
            "redirect_uri": settings.callback_url,
            "response_type": "code",
            "state": state,
        }
    )
    response = RedirectResponse(
        f"{settings.hub_prefix}api/oauth2/authorize?{query}", status_code=302
    )
    response.set_cookie(
        STATE_COOKIE, f"{state}|{target}", path=prefix, httponly=True, samesite="lax", max_age=600
    )
    return response


@router.get("/oauth_callback", include_in_schema=False)
async def oauth_callback(request: Request, ctx: Ctx, code: str = "", state: str = ""):
    prefix, settings = ctx.prefix, ctx.settings
    saved, _, target = request.cookies.get(STATE_COOKIE, "").partition("|")
    if not code or not state or not saved or not secrets.compare_digest(saved, state):
        return HTMLResponse(
            dashboard.error_page(prefix, "", 400, "OAuth state mismatch: start again."), 400
        )
    token = await ctx.hub.exchange_code(code, settings.client_id, settings.callback_url)
    if token is None:
        return HTMLResponse(
            dashboard.error_page(prefix, "", 403, "The hub refused the login."), 403
        )
    response = RedirectResponse(target if target.startswith(prefix) else prefix, status_code=302)
    response.set_cookie(COOKIE, token, path=prefix, httponly=True, samesite="lax", max_age=8 * 3600)
    response.set_cookie(
        XSRF_COOKIE, secrets.token_urlsafe(24), path=prefix, samesite="strict", max_age=8 * 3600
    )
    response.delete_cookie(STATE_COOKIE, path=prefix)
    return response


@router.get("/logout", include_in_schema=False)
async def logout(ctx: Ctx):
    response = RedirectResponse(ctx.settings.hub_prefix + "home", status_code=302)
    response.delete_cookie(COOKIE, path=ctx.prefix)
    return response
