"""The usage service's REST API, mounted at <prefix>api/ (OpenAPI at <prefix>openapi.json).

Who may call what is decided in security.py (ApiCaller, need_*); what the answers hold is
api_models.py. Blocking work (the database) runs in threads.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import PlainTextResponse

from .api_models import (
    Health,
    LimitsOut,
    LiveServer,
    Me,
    Message,
    QuotaIn,
    QuotaOut,
    ReportOut,
    SampleOut,
    SessionEnd,
    SessionIn,
    SessionOut,
)
from .context import Ctx, ServiceContext
from .models import utcnow
from .quotas import effective_limits
from .reports import report, to_csv, totals
from .security import ApiCaller, need_admin, need_read, need_read_all

EARLIEST, LATEST = dt.datetime(2000, 1, 1), dt.datetime(2200, 1, 1)

router = APIRouter()

FromQ = Annotated[
    dt.datetime | None, Query(alias="from", description="Start (ISO 8601, UTC if no zone).")
]
ToQ = Annotated[dt.datetime | None, Query(alias="to", description="End, exclusive. Default: now.")]


def naive_utc(value: dt.datetime | None) -> dt.datetime | None:
    """A date from a query or body as naive UTC (what the store keeps); 400 outside 2000-2200."""
    if value is None:
        return None
    if value.tzinfo is not None:
        try:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
            value = None
    if value is None or not (EARLIEST <= value <= LATEST):
        raise HTTPException(
            400, f"dates must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}"
        )
    return value


def window(
    start: dt.datetime | None, end: dt.datetime | None, default_days: int = 7
) -> tuple[dt.datetime, dt.datetime]:
    end = naive_utc(end) or utcnow()
    start = naive_utc(start) or end - dt.timedelta(days=default_days)
    if start >= end:
        raise HTTPException(400, "'from' must be before 'to'")
    return start, end


@router.get("/health", response_model=Health, summary="Sampler health (no usage data)")
async def health(ctx: Ctx):
    return {
        "ok": True,
        "rounds": ctx.loop.rounds if ctx.loop else 0,
        "last_round_ms": ctx.loop.last_round_ms if ctx.loop else None,
        "last_round_servers": ctx.loop.last_round_servers if ctx.loop else 0,
    }


@router.get("/me", response_model=Me, summary="Who the service thinks you are")
async def me(caller: ApiCaller):
    return {
        "name": caller.name,
        "kind": caller.kind,
        "admin": caller.admin,
        "read_all": caller.read_all,
    }


@router.get(
    "/sessions",
    response_model=list[SessionOut],
    summary="Sessions overlapping a window, newest first",
)
async def list_sessions(
    caller: ApiCaller,
    ctx: Ctx,
    start: FromQ = None,
    end: ToQ = None,
    user: Annotated[str | None, Query(max_length=255)] = None,
    state: Annotated[Literal["open", "closed", "all"], Query()] = "all",
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
):
    if user is None and not caller.read_all:
        user = caller.name
    if user is not None:
        need_read(caller, user)
    s, e = naive_utc(start), naive_utc(end)
    if state == "open":
        rows = await asyncio.to_thread(ctx.store.open_sessions, user)
        rows = rows[offset : offset + limit]
    else:
        rows = await asyncio.to_thread(ctx.store.sessions, user, s, e, limit, offset)
        if state == "closed":
            rows = [r for r in rows if r.ended_at is not None]
    return [r.as_dict() for r in rows]


@router.get(
    "/sessions/{session_id}",
    response_model=SessionOut,
    summary="One session",
    responses={403: {"model": Message}, 404: {"model": Message}},
)
async def get_session(
    session_id: Annotated[int, PathParam(ge=0, le=2**31 - 1)], caller: ApiCaller, ctx: Ctx
):
    session = await asyncio.to_thread(ctx.session_or_404, session_id)
    need_read(caller, session.username)
    return session.as_dict()


@router.get(
    "/sessions/{session_id}/samples", response_model=list[SampleOut], summary="A session's samples"
)
async def get_samples(
    session_id: Annotated[int, PathParam(ge=0, le=2**31 - 1)],
    caller: ApiCaller,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=100000)] = 10000,
):
    session = await asyncio.to_thread(ctx.session_or_404, session_id)
    need_read(caller, session.username)
    return await asyncio.to_thread(ctx.store.samples, session_id, limit)


@router.post(
    "/sessions",
    response_model=SessionOut,
    status_code=201,
    summary="Record a session by hand (admins; the hub records its own)",
)
async def post_session(body: SessionIn, caller: ApiCaller, ctx: Ctx):
    need_admin(caller)
    started = naive_utc(body.start)
    sid = await asyncio.to_thread(
        lambda: ctx.store.open_session(
            body.user,
            body.server,
            backend=body.backend,
            profile=body.profile,
            devices=body.devices,
            device_kind=body.device_kind,
            n_devices=body.n_devices,
            started_at=started,
        )
    )
    return (await asyncio.to_thread(ctx.session_or_404, sid)).as_dict()


@router.put(
    "/sessions/{session_id}/end", response_model=SessionOut, summary="End a session (admins)"
)
async def end_session(
    session_id: Annotated[int, PathParam(ge=0, le=2**31 - 1)],
    body: SessionEnd,
    caller: ApiCaller,
    ctx: Ctx,
):
    need_admin(caller)
    ended = naive_utc(body.end)
    session = await asyncio.to_thread(ctx.store.end_session, session_id, body.reason, ended)
    if session is None:
        raise HTTPException(404, f"No session {session_id}.")
    return session.as_dict()


@router.get(
    "/users/{username}/limits",
    response_model=LimitsOut,
    summary="A user's limits and current use (the seed's shape, plus quota details)",
)
async def user_limits(
    username: Annotated[str, PathParam(max_length=255)], caller: ApiCaller, ctx: Ctx
):
    need_read(caller, username)
    groups, is_admin = await ctx.user_info(username)
    return await asyncio.to_thread(ctx.limits_payload, username, groups, is_admin)


@router.get("/users/{username}/usage", response_model=ReportOut, summary="A user's use per day")
async def user_usage(
    username: Annotated[str, PathParam(max_length=255)],
    caller: ApiCaller,
    ctx: Ctx,
    start: FromQ = None,
    end: ToQ = None,
):
    need_read(caller, username)
    s, e = window(start, end)
    rows = await asyncio.to_thread(report, ctx.store, s, e, "day", ctx.rates, [username])
    return _report_out(ctx, rows, "day", s, e)


@router.put(
    "/users/{username}/quota", response_model=QuotaOut, summary="Override a user's quota (admins)"
)
async def put_quota(
    username: Annotated[str, PathParam(max_length=255)], body: QuotaIn, caller: ApiCaller, ctx: Ctx
):
    need_admin(caller)
    await asyncio.to_thread(
        lambda: ctx.store.set_override(
            "user",
            username,
            caller.name,
            unlimited=body.unlimited,
            gpu_hours_per_week=body.gpu_hours_per_week,
            cpu_hours_per_week=body.cpu_hours_per_week,
            max_servers=body.max_servers,
            max_devices=body.max_devices,
        )
    )
    groups, is_admin = await ctx.user_info(username)
    limits = effective_limits(
        username, groups, is_admin, ctx.cfg.usage.quotas, ctx.store.overrides()
    )
    return {
        **{
            f: getattr(limits, f)
            for f in ("gpu_hours_per_week", "cpu_hours_per_week", "max_servers", "max_devices")
        },
        "source": limits.source,
    }


@router.delete(
    "/users/{username}/quota", response_model=Message, summary="Remove an admin override (admins)"
)
async def delete_quota(
    username: Annotated[str, PathParam(max_length=255)], caller: ApiCaller, ctx: Ctx
):
    need_admin(caller)
    removed = await asyncio.to_thread(ctx.store.clear_override, "user", username)
    return {
        "message": f"override for {username} removed" if removed else f"{username} had no override"
    }


def _report_out(ctx: ServiceContext, rows, by, s, e) -> dict:
    return {
        "by": by,
        "start": s.isoformat() + "Z",
        "end": e.isoformat() + "Z",
        "currency": ctx.rates.currency,
        "rows": [r.as_dict() for r in rows],
        "total": totals(rows).as_dict(),
    }


@router.get(
    "/report",
    response_model=ReportOut,
    summary="Usage and cost per user, group or day (everyone's: "
    "administrators and custom:mlworkshop-usage:read)",
    responses={200: {"content": {"text/csv": {}}}},
)
async def get_report(
    caller: ApiCaller,
    ctx: Ctx,
    start: FromQ = None,
    end: ToQ = None,
    by: Annotated[Literal["user", "group", "day"], Query()] = "user",
    format: Annotated[Literal["json", "csv"], Query()] = "json",
):
    need_read_all(caller)
    s, e = window(start, end)
    rows = await asyncio.to_thread(report, ctx.store, s, e, by, ctx.rates)
    if format == "csv":
        return PlainTextResponse(
            to_csv(rows, by, ctx.rates.currency),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="usage-{by}.csv"'},
        )
    return _report_out(ctx, rows, by, s, e)


@router.get(
    "/servers", response_model=list[LiveServer], summary="Running servers with their latest sample"
)
async def live_servers(caller: ApiCaller, ctx: Ctx):
    sessions = await asyncio.to_thread(
        ctx.store.open_sessions, None if caller.read_all else caller.name
    )
    return await asyncio.to_thread(ctx.live, sessions)


@router.post(
    "/servers/{username}/stop",
    response_model=Message,
    status_code=202,
    summary="Stop a server (admins)",
)
async def stop_server(
    username: Annotated[str, PathParam(max_length=255)],
    caller: ApiCaller,
    ctx: Ctx,
    server: Annotated[str, Query(max_length=255)] = "",
):
    need_admin(caller)
    open_ = [
        s
        for s in await asyncio.to_thread(ctx.store.open_sessions, username)
        if s.server_name == server
    ]
    for s in open_:
        await asyncio.to_thread(ctx.store.request_stop, s.id, "admin")
    status = await ctx.hub.stop_server(username, server)
    if status in (400, 404):
        raise HTTPException(404, f"The hub has no server {server!r} for {username}.")
    if status >= 400:
        raise HTTPException(502, f"The hub refused to stop the server ({status}).")
    return {"message": f"stopping {username}'s server {server!r}"}
