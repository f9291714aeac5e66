"""The usage service's pages (mounted at <prefix>): a student's own week and limits (`me`) and the
admins' overview (`admin`), rendered by dashboard.py from the same views as the API (context.py).
Without credentials a page redirects to the hub's login (security.PageCaller).
"""

from __future__ import annotations

import asyncio
import datetime as dt

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from ..i18n import _, negotiate, set_language
from . import dashboard
from .context import Ctx
from .models import utcnow
from .quotas import week_start
from .reports import report, totals
from .security import XSRF_COOKIE, PageCaller

router = APIRouter()


def in_reader_language(request: Request, ctx) -> None:
    """The page's language: hub.language, or the browser's with auto (as the hub's pages)."""
    set_language(negotiate(request.headers.get("Accept-Language"), ctx.cfg.hub.language))


@router.get("/", include_in_schema=False)
async def home(caller: PageCaller, ctx: Ctx):
    return RedirectResponse(ctx.prefix + ("admin" if caller.read_all else "me"), status_code=302)


@router.get("/me", include_in_schema=False)
async def my_page(request: Request, caller: PageCaller, ctx: Ctx):
    in_reader_language(request, ctx)
    groups, is_admin = await ctx.user_info(caller.name)

    def build():
        payload = ctx.limits_payload(caller.name, groups, is_admin)
        now = utcnow()
        rows = report(ctx.store, week_start(now), now, "user", ctx.rates, [caller.name], now=now)
        running = ctx.live(ctx.store.open_sessions(caller.name))
        used = payload["used_this_week"]
        return dashboard.user_page(
            prefix=ctx.prefix,
            who=caller.name,
            admin=caller.read_all,
            limits=payload["quota"],
            used=used,
            remaining=payload["remaining"],
            week_row=rows[0] if rows else None,
            running=running,
            currency=ctx.rates.currency,
            verdict={"state": payload["state"], "message": payload["message"]},
        )

    return HTMLResponse(await asyncio.to_thread(build))


@router.get("/admin", include_in_schema=False)
async def admin_page(request: Request, caller: PageCaller, ctx: Ctx):
    in_reader_language(request, ctx)
    if not caller.read_all:
        return HTMLResponse(
            dashboard.error_page(
                ctx.prefix, caller.name, 403, _("Only administrators see everyone's usage.")
            ),
            403,
        )

    def build():
        now = utcnow()
        week = report(ctx.store, week_start(now), now, "user", ctx.rates, now=now)
        total = totals(week)
        month_start = dt.datetime.combine(now.date() - dt.timedelta(days=29), dt.time())
        by_day = {r.key: r for r in report(ctx.store, month_start, now, "day", ctx.rates, now=now)}
        days = []
        for i in range(30):
            key = (month_start.date() + dt.timedelta(days=i)).isoformat()
            r = by_day.get(key)
            days.append((key, (r.gpu_hours + r.npu_hours) if r else 0.0, r.cpu_hours if r else 0.0))
        top = sorted(
            week, key=lambda r: (-r.cost, -(r.gpu_hours + r.npu_hours), -r.cpu_hours, r.key)
        )[:10]
        live = ctx.live(ctx.store.open_sessions())
        return dashboard.admin_page(
            prefix=ctx.prefix,
            who=caller.name,
            week={
                "cpu_hours": total.cpu_hours,
                "gpu_hours": total.gpu_hours + total.npu_hours,
                "mem_gib_hours": total.mem_gib_hours,
                "cost": total.cost,
            },
            month_days=days,
            top=top,
            live=live,
            currency=ctx.rates.currency,
            xsrf=request.cookies.get(XSRF_COOKIE, ""),
            sample_every=ctx.cfg.usage.sample_every,
        )

    return HTMLResponse(await asyncio.to_thread(build))
