"""The usage service's FastAPI app: one ServiceContext (context.py) on app.state, the API
(api.py) at <prefix>api/, OAuth with the hub (security.py) and the pages (pages.py) at <prefix>,
and the sampling loop (sampling.py) running for as long as the app does.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import unquote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse

from ..config import MLWorkshopConfig
from . import api, pages, security
from .context import ServiceContext
from .hubclient import HubClient
from .sampling import UsageLoop
from .settings import ServiceSettings
from .store import LazyStore, StoreUnavailable, UsageStore


def create_app(
    settings: ServiceSettings,
    cfg: MLWorkshopConfig,
    store: UsageStore | LazyStore,
    hub: HubClient,
    loop: UsageLoop | None = None,
    sampling_begins: asyncio.Event | None = None,
) -> FastAPI:
    """`sampling_begins`, when given, holds the first sampling round back until it is set: the
    service sets it once it answers HTTP (service.py), since JupyterHub adds the proxy's routes,
    /hub/ too, only after every managed service answers, and a first round over every running
    server (a hub restart in class) would otherwise hold this event loop while it waits."""
    ctx = ServiceContext(settings, cfg, store, hub, loop)
    prefix = ctx.prefix

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        task = (
            asyncio.create_task(loop.run(cfg.usage.sample_every, sampling_begins))
            if loop is not None
            else None
        )
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    app = FastAPI(
        title="mlworkshop usage",
        version="1",
        description="Sessions, samples, reports and quotas of an mlworkshop hub. Authenticate with a "
        "JupyterHub API token (`Authorization: token ...`) or by logging in through the hub.",
        openapi_url=prefix + "openapi.json",
        docs_url=prefix + "docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.usage = ctx

    @app.exception_handler(StoreUnavailable)
    async def _unavailable(request: Request, exc: StoreUnavailable):
        return JSONResponse(
            {"detail": f"Usage data is unavailable right now: {exc}. Try again in a minute."},
            status_code=503,
        )

    @app.exception_handler(security.NeedLogin)
    async def _login(request: Request, exc: security.NeedLogin):
        return RedirectResponse(
            f"{prefix}oauth_login?{urlencode({'next': exc.next_url})}", status_code=302
        )

    @app.middleware("http")
    async def refuse_control_characters(request: Request, call_next):
        raw = unquote(request.url.path) + unquote(request.url.query)
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in raw):
            return PlainTextResponse(
                "Control characters are not allowed in the URL.", status_code=400
            )
        return await call_next(request)

    app.include_router(api.router, prefix=ctx.base + "/api")
    app.include_router(security.router, prefix=ctx.base)
    app.include_router(pages.router, prefix=ctx.base)
    return app
