"""The usage service: REST API (OpenAPI at <prefix>openapi.json), dashboards, the sampler and the
stop-at-limit enforcement. JupyterHub runs it as a managed service (`python -m
mlworkshop.usage.service`); it talks to the hub only through the hub's REST API.

Authentication is JupyterHub's: browsers log in through the hub's OAuth (the access token is
kept in an HttpOnly cookie scoped to the service's prefix); scripts send a hub API token
(`Authorization: token ...`). Every token is checked with the hub (`GET /hub/api/user`), and the
caller's admin flag is read with the service's own token (see hubclient.py for the rules).
Writes made with the browser cookie also need the X-XSRF-Token header (double-submit cookie).
"""

import asyncio
import contextlib
import datetime as dt
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from pydantic import BaseModel, Field

from ..accelerators.profiles import server_resources
from ..config import MLWorkshopConfig
from ..site import Site
from . import dashboard
from .collector import ContainerSampler, GpuSampler, ProcessSampler
from .hubclient import Caller, HubClient
from .models import utcnow
from .quotas import current_use, current_use_many, effective_limits, remaining, running_verdict, week_start
from .reports import Rates, report, to_csv, totals
from .store import LazyStore, SampleIn, SessionInfo, StoreUnavailable, UsageStore

log = logging.getLogger("mlworkshop.usage")
COOKIE = "mlw-usage-token"
XSRF_COOKIE = "mlw-usage-xsrf"
STATE_COOKIE = "mlw-usage-state"
GIB = 1024**3
EARLIEST, LATEST = dt.datetime(2000, 1, 1), dt.datetime(2200, 1, 1)
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"  # no NUL or control characters (PostgreSQL refuses NUL in text)


# --- settings ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServiceSettings:
    api_url: str
    token: str
    prefix: str = "/services/usage/"
    client_id: str = "service-usage"
    callback_url: str = "/services/usage/oauth_callback"
    hub_prefix: str = "/hub/"
    host: str = "127.0.0.1"
    port: int = 8082

    @classmethod
    def from_env(cls, environ=os.environ) -> "ServiceSettings":
        from urllib.parse import urlparse

        url = urlparse(environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8082"))
        prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/usage/")
        return cls(api_url=environ["JUPYTERHUB_API_URL"], token=environ["JUPYTERHUB_API_TOKEN"], prefix=prefix,
                   client_id=environ.get("JUPYTERHUB_CLIENT_ID", "service-usage"),
                   callback_url=environ.get("JUPYTERHUB_OAUTH_CALLBACK_URL", prefix + "oauth_callback"),
                   hub_prefix=environ.get("JUPYTERHUB_BASE_URL", "/") + "hub/",
                   host=url.hostname or "127.0.0.1", port=url.port or 8082)


# --- API models (the OpenAPI spec is generated from these) -------------------------------------
class SessionOut(BaseModel):
    id: int
    user: str
    server: str
    backend: str
    profile: str | None
    device_kind: str | None
    n_devices: int
    devices: list[str]
    groups: list[str]
    start: str
    end: str | None
    end_reason: str | None
    last_seen: str | None


class SessionIn(BaseModel):
    user: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
    server: str = Field("", max_length=255, pattern=PRINTABLE)
    backend: str = Field("local", max_length=32, pattern=PRINTABLE)
    profile: str | None = Field(None, max_length=64, pattern=PRINTABLE)
    devices: list[Annotated[str, Field(max_length=64, pattern=PRINTABLE)]] = Field(default_factory=list, max_length=64)
    device_kind: Literal["nvidia", "ascend"] | None = None
    n_devices: int = Field(0, ge=0, le=64)
    start: dt.datetime | None = None


class SessionEnd(BaseModel):
    reason: str = Field("admin", min_length=1, max_length=32, pattern=PRINTABLE)
    end: dt.datetime | None = None


class SampleOut(BaseModel):
    ts: str
    interval_s: float
    cpu_seconds: float
    mem_bytes: int
    gpu_util: float | None
    gpu_mem_bytes: int | None


class CurrentUse(BaseModel):
    cpu_cores: float
    memory_gib: float
    gpu: int


class QuotaOut(BaseModel):
    gpu_hours_per_week: float | None
    cpu_hours_per_week: float | None
    max_servers: int | None
    max_devices: int | None
    source: str


class WeekUse(BaseModel):
    gpu_hours: float
    cpu_hours: float
    servers: int
    devices: int


class Left(BaseModel):
    gpu_hours: float | None
    cpu_hours: float | None
    servers: int | None
    devices: int | None


class LimitsOut(BaseModel):
    cpu_limit_cores: float | None
    memory_limit_gib: float | None
    gpu_limit: int | None
    usage: CurrentUse
    quota: QuotaOut
    used_this_week: WeekUse
    remaining: Left
    state: Literal["ok", "warn", "over"]
    message: str
    oom_kills: int | None = Field(
        None, description="Processes of the user's running server the out-of-memory killer stopped "
        "(local backend with cgroups; null: not known).")


class QuotaIn(BaseModel):
    unlimited: bool = False
    gpu_hours_per_week: float | None = Field(None, ge=0, le=1e6)
    cpu_hours_per_week: float | None = Field(None, ge=0, le=1e6)
    max_servers: int | None = Field(None, ge=0, le=10000)
    max_devices: int | None = Field(None, ge=0, le=10000)


class ReportRowOut(BaseModel):
    key: str
    sessions: int
    cpu_hours: float
    mem_gib_hours: float
    gpu_hours: float
    npu_hours: float
    cost: float


class ReportOut(BaseModel):
    by: str
    start: str
    end: str
    currency: str
    rows: list[ReportRowOut]
    total: ReportRowOut


class LiveServer(BaseModel):
    session_id: int
    user: str
    server: str
    profile: str | None
    devices: list[str]
    start: str
    cpu_percent: float | None
    mem_mib: float | None
    gpu_util: float | None
    sampled_at: str | None


class Me(BaseModel):
    name: str
    kind: str
    admin: bool
    read_all: bool


class Health(BaseModel):
    ok: bool
    rounds: int
    last_round_ms: float | None
    last_round_servers: int


class Message(BaseModel):
    message: str


# --- the sampler and enforcer ----------------------------------------------------------------
class UsageLoop:
    """Every sample_every seconds: sample each open session's processes (or container), store
    the samples, then warn or stop servers whose users are over budget."""

    def __init__(self, store: UsageStore | LazyStore, hub: HubClient, cfg: MLWorkshopConfig):
        self.store, self.hub, self.cfg = store, hub, cfg
        self.processes = ProcessSampler()
        self.containers = ContainerSampler(url=self._engine_url(cfg))
        self.gpu = GpuSampler()
        self.rounds = 0
        self.last_round_ms: float | None = None
        self.last_round_servers = 0
        self.stopping: set[int] = set()

    @staticmethod
    def _engine_url(cfg: MLWorkshopConfig) -> str | None:
        docker = getattr(cfg.spawner, "docker", None)  # the docker backend's engine (podman works too)
        return getattr(docker, "url", None) or None

    async def sweep_lost(self) -> list[SessionInfo]:
        """At start: sessions open in the store whose server the hub does not know are closed as
        lost (their end is their last sample). The hub closes its own dead servers itself."""
        users = await self.hub.active_users()
        alive = {(u["name"], name) for u in users for name in (u.get("servers") or {})}
        closed = await asyncio.to_thread(self.store.close_lost, alive)
        for s in closed:
            log.warning("Session %s of %s/%s was open but the hub has no such server: closed as lost", s.id,
                        s.username, s.server_name)
        return closed

    def _sample(self, sessions: list[SessionInfo]) -> list[SampleIn]:
        now = utcnow()
        local = {s.id: s.pid for s in sessions if s.pid and s.backend == "local"}
        containers = {s.id: s.container_id for s in sessions if s.container_id and s.backend == "docker"}
        readings = self.processes.sample(local, self.gpu if self.gpu.available else None) if local else {}
        if containers:
            readings.update(self.containers.sample(containers))
        return [SampleIn(sid, now, r.cpu_total, r.mem_bytes, r.gpu_util, r.gpu_mem_bytes, r.cpu_departed)
                for sid, r in readings.items()]

    async def round(self) -> None:
        started = time.perf_counter()
        sessions = await asyncio.to_thread(self.store.open_sessions)
        samples = await asyncio.to_thread(self._sample, sessions)
        await asyncio.to_thread(self.store.add_samples, samples)
        self.last_round_servers = len(samples)
        self.last_round_ms = (time.perf_counter() - started) * 1000
        self.rounds += 1
        if sessions:
            await self.enforce(sessions)

    async def enforce(self, sessions: list[SessionInfo]) -> None:
        cfg = self.cfg.usage
        overrides = await asyncio.to_thread(self.store.overrides)
        users = {u["name"]: u for u in await self.hub.active_users()}
        by_user: dict[str, list[SessionInfo]] = {}
        for s in sessions:
            by_user.setdefault(s.username, []).append(s)
        now = utcnow()
        budgets = {}
        for username, mine in by_user.items():
            info = users.get(username) or {}
            groups = info.get("groups") or (mine[0].groups if mine else [])
            limits = effective_limits(username, groups, bool(info.get("admin")), cfg.quotas, overrides)
            if limits.gpu_hours_per_week is not None or limits.cpu_hours_per_week is not None:
                budgets[username] = limits
        if not budgets:
            return
        use = await asyncio.to_thread(current_use_many, self.store, list(budgets), now)  # one query for all
        for username, limits in budgets.items():
            mine, used = by_user[username], use[username]
            for s in mine:
                verdict = running_verdict(limits, used, cfg.warn_at, s.n_devices > 0, cfg.enforce_cpu_only)
                if verdict.state in ("warn", "over") and s.warned_at is None:
                    await asyncio.to_thread(self.store.mark, s.id, warned_at=now)
                    log.warning("Quota warning for %s (server %r): %s", username, s.server_name, verdict.message)
                if verdict.state == "over" and verdict.enforce:
                    if s.over_limit_at is None:
                        await asyncio.to_thread(self.store.mark, s.id, over_limit_at=now)
                        log.warning("%s is over quota; server %r stops in %g min unless the quota grows",
                                    username, s.server_name, cfg.grace_minutes)
                        if cfg.grace_minutes > 0:
                            continue
                        over_since = now
                    else:
                        over_since = s.over_limit_at
                    if (now - over_since).total_seconds() >= cfg.grace_minutes * 60 and s.id not in self.stopping:
                        self.stopping.add(s.id)
                        await asyncio.to_thread(self.store.request_stop, s.id, "quota")
                        status = await self.hub.stop_server(username, s.server_name)
                        log.warning("Stopped %s's server %r at the quota limit (hub answered %s)",
                                    username, s.server_name, status)
                elif s.over_limit_at is not None and verdict.state != "over":
                    await asyncio.to_thread(self.store.mark, s.id, over_limit_at=None)  # the quota grew

    async def run(self, every: float) -> None:
        swept = False
        while True:
            started = time.monotonic()
            if not swept:  # once, as soon as both the hub and the usage database answer
                try:
                    await self.sweep_lost()
                    swept = True
                except Exception as exc:  # noqa: BLE001
                    log.error("Could not check for lost sessions yet: %s", exc)
            try:
                await self.round()
            except Exception as exc:  # noqa: BLE001 - a bad round must not end sampling
                log.error("Sampling round failed: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
            await asyncio.sleep(max(0.05, every - (time.monotonic() - started)))


# --- the app ---------------------------------------------------------------------------------
def _naive_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        try:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
            value = None
    if value is None or not (EARLIEST <= value <= LATEST):
        raise HTTPException(400, f"dates must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
    return value


def _window(start: dt.datetime | None, end: dt.datetime | None, default_days: int = 7) -> tuple[dt.datetime, dt.datetime]:
    end = _naive_utc(end) or utcnow()
    start = _naive_utc(start) or end - dt.timedelta(days=default_days)
    if start >= end:
        raise HTTPException(400, "'from' must be before 'to'")
    return start, end


class NeedLogin(Exception):
    def __init__(self, next_url: str):
        self.next_url = next_url


def create_app(settings: ServiceSettings, cfg: MLWorkshopConfig, store: UsageStore | LazyStore, hub: HubClient,
               loop: UsageLoop | None = None) -> FastAPI:
    prefix = settings.prefix if settings.prefix.endswith("/") else settings.prefix + "/"
    base = prefix.rstrip("/")
    rates = Rates.of(cfg.usage.rates)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        task = asyncio.create_task(loop.run(cfg.usage.sample_every)) if loop is not None else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    app = FastAPI(title="mlworkshop usage", version="1",
                  description="Sessions, samples, reports and quotas of an mlworkshop hub. Authenticate with a "
                  "JupyterHub API token (`Authorization: token ...`) or by logging in through the hub.",
                  openapi_url=prefix + "openapi.json", docs_url=prefix + "docs", redoc_url=None, lifespan=lifespan)
    api = APIRouter(prefix=base + "/api")
    pages = APIRouter(prefix=base)

    async def caller_or_none(request: Request) -> Caller | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if token and scheme.lower() in ("token", "bearer"):
            caller = await hub.identify(token.strip(), "token")
            if caller is None:
                raise HTTPException(403, "The hub does not accept this token.")
            return caller
        token = request.cookies.get(COOKIE)
        if token:
            caller = await hub.identify(token, "cookie")
            if caller is not None and request.method not in ("GET", "HEAD", "OPTIONS"):
                sent = request.headers.get("x-xsrf-token", "")
                if not sent or not secrets.compare_digest(sent, request.cookies.get(XSRF_COOKIE, "")):
                    raise HTTPException(403, "Missing or wrong X-XSRF-Token header.")
            return caller
        return None

    async def api_caller(request: Request) -> Caller:
        caller = await caller_or_none(request)
        if caller is None:
            raise HTTPException(401, "Log in through the hub, or send a hub API token (Authorization: token ...).")
        return caller

    async def page_caller(request: Request) -> Caller:
        caller = await caller_or_none(request)
        if caller is None:
            raise NeedLogin(str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""))
        return caller

    def need_read(caller: Caller, username: str) -> None:
        if not caller.may_read(username):
            raise HTTPException(403, f"{caller.name} may not see {username}'s usage.")

    def need_read_all(caller: Caller) -> None:
        if not caller.read_all:
            raise HTTPException(403, "Only administrators may see everyone's usage.")

    def need_admin(caller: Caller) -> None:
        if not caller.admin:
            raise HTTPException(403, "Only administrators may change usage data.")

    ApiCaller = Annotated[Caller, Depends(api_caller)]
    FromQ = Annotated[dt.datetime | None, Query(alias="from", description="Start (ISO 8601, UTC if no zone).")]
    ToQ = Annotated[dt.datetime | None, Query(alias="to", description="End, exclusive. Default: now.")]

    @app.exception_handler(StoreUnavailable)
    async def _unavailable(request: Request, exc: StoreUnavailable):
        return JSONResponse({"detail": f"Usage data is unavailable right now: {exc}. Try again in a minute."},
                            status_code=503)

    @app.exception_handler(NeedLogin)
    async def _login(request: Request, exc: NeedLogin):
        return RedirectResponse(f"{prefix}oauth_login?{urlencode({'next': exc.next_url})}", status_code=302)

    # --- OAuth ---------------------------------------------------------------------------------
    @pages.get("/oauth_login", include_in_schema=False)
    async def oauth_login(next: str = ""):
        state = secrets.token_urlsafe(24)
        target = next if next.startswith(prefix) else prefix
        query = urlencode({"client_id": settings.client_id, "redirect_uri": settings.callback_url,
                           "response_type": "code", "state": state})
        response = RedirectResponse(f"{settings.hub_prefix}api/oauth2/authorize?{query}", status_code=302)
        response.set_cookie(STATE_COOKIE, f"{state}|{target}", path=prefix, httponly=True, samesite="lax", max_age=600)
        return response

    @pages.get("/oauth_callback", include_in_schema=False)
    async def oauth_callback(request: Request, code: str = "", state: str = ""):
        saved, _, target = request.cookies.get(STATE_COOKIE, "").partition("|")
        if not code or not state or not saved or not secrets.compare_digest(saved, state):
            return HTMLResponse(dashboard.error_page(prefix, "", 400, "OAuth state mismatch: start again."), 400)
        token = await hub.exchange_code(code, settings.client_id, settings.callback_url)
        if token is None:
            return HTMLResponse(dashboard.error_page(prefix, "", 403, "The hub refused the login."), 403)
        response = RedirectResponse(target if target.startswith(prefix) else prefix, status_code=302)
        response.set_cookie(COOKIE, token, path=prefix, httponly=True, samesite="lax", max_age=8 * 3600)
        response.set_cookie(XSRF_COOKIE, secrets.token_urlsafe(24), path=prefix, samesite="strict", max_age=8 * 3600)
        response.delete_cookie(STATE_COOKIE, path=prefix)
        return response

    @pages.get("/logout", include_in_schema=False)
    async def logout():
        response = RedirectResponse(settings.hub_prefix + "home", status_code=302)
        response.delete_cookie(COOKIE, path=prefix)
        return response

    # --- helpers shared by API and pages ---------------------------------------------------------
    def _live(sessions: list[SessionInfo]) -> list[dict]:
        latest = store.latest_samples([s.id for s in sessions])
        out = []
        for s in sessions:
            sample = latest.get(s.id)
            out.append({"session_id": s.id, "user": s.username, "server": s.server_name, "profile": s.profile,
                        "devices": s.devices, "start": s.started_at.isoformat(timespec="seconds") + "Z",
                        "cpu_percent": sample["cpu_percent"] if sample else None,
                        "mem_mib": sample["mem_bytes"] / 2**20 if sample else None,
                        "gpu_util": sample["gpu_util"] if sample else None,
                        "sampled_at": sample["ts"].isoformat(timespec="seconds") + "Z" if sample else None})
        return out

    async def _user_info(username: str) -> tuple[list[str], bool]:
        try:
            model = await hub.user(username)
        except Exception:  # noqa: BLE001 - the hub is busy: fall back to what the sessions recorded
            model = None
        if model is None:
            recent = await asyncio.to_thread(store.sessions, username, None, None, 1)
            return (recent[0].groups if recent else []), False
        return list(model.get("groups") or []), bool(model.get("admin"))

    def _limits_payload(username: str, groups: list[str], is_admin: bool) -> dict:
        now = utcnow()
        limits = effective_limits(username, groups, is_admin, cfg.usage.quotas, store.overrides())
        used = current_use(store, username, now)
        left = remaining(limits, used)
        running = store.open_sessions(username)
        latest = store.latest_samples([s.id for s in running])
        profiles = cfg.accelerators.profiles
        cpu_limit = mem_limit = 0.0
        cpu_none = mem_none = False
        for s in running or [None]:
            # what the cgroup enforces (shared mode: the profile's per-device limits, nothing allocated)
            p_cpu, p_bytes = server_resources(profiles, s.n_devices if s else 0, bool(s) and s.profile == "shared")
            p_mem = None if p_bytes is None else p_bytes / GIB
            cpu_none |= p_cpu is None
            mem_none |= p_mem is None
            cpu_limit += p_cpu or 0.0
            mem_limit += p_mem or 0.0
        gpu_limit = limits.max_devices
        if gpu_limit is None:
            from ..accelerators import effective_limit

            gpu_limit = effective_limit(username, groups, is_admin, cfg.accelerators).max_devices
        verdict = running_verdict(limits, used, cfg.usage.warn_at, True, cfg.usage.enforce_cpu_only)  # for display
        oom_kills, oom_message = _out_of_memory(username)
        return {
            "cpu_limit_cores": None if cpu_none else round(cpu_limit, 3),
            "memory_limit_gib": None if mem_none else round(mem_limit, 3),
            "gpu_limit": gpu_limit,
            "usage": {"cpu_cores": round(sum((latest[s.id]["cpu_percent"] / 100) for s in running if s.id in latest), 3),
                      "memory_gib": round(sum(latest[s.id]["mem_bytes"] for s in running if s.id in latest) / GIB, 3),
                      "gpu": sum(s.n_devices for s in running)},
            "quota": {"gpu_hours_per_week": limits.gpu_hours_per_week, "cpu_hours_per_week": limits.cpu_hours_per_week,
                      "max_servers": limits.max_servers, "max_devices": limits.max_devices, "source": limits.source},
            "used_this_week": {"gpu_hours": round(used.gpu_hours, 6), "cpu_hours": round(used.cpu_hours, 6),
                               "servers": used.servers, "devices": used.devices},
            "remaining": left.as_dict(),
            "state": verdict.state,
            "message": " ".join(m for m in (oom_message, verdict.message) if m),
            "oom_kills": oom_kills,
        }

    def _out_of_memory(username: str) -> tuple[int | None, str]:
        """How often the kernel's OOM killer stopped a process of this user's running server (its
        cgroup, local backend), and a sentence saying so; (None, "") where that cannot be known."""
        if cfg.spawner.backend != "local":
            return None, ""
        from .. import cgroups

        hierarchy = cgroups.detect()
        try:
            group = hierarchy and hierarchy.controller_dir("memory", cfg.spawner.local.user_prefix + username)
        except cgroups.CgroupError:
            return None, ""
        kills = cgroups.oom_kills_in(hierarchy, group) if group else None
        if not kills:
            return kills, ""
        limit = cgroups.memory_limit_in(hierarchy, group)
        within = f" within its limit of {cgroups.describe_bytes(limit)}" if limit else ""
        return kills, (f"Your server ran out of memory{within}: the kernel's out-of-memory killer stopped "
                       f"{kills} of its processes (usually a notebook's kernel, which then restarts). "
                       "Use less memory at once (smaller batches or data), or ask for a larger profile.")

    def _session_or_404(session_id: int) -> SessionInfo:
        session = store.get_session(session_id)
        if session is None:
            raise HTTPException(404, f"No session {session_id}.")
        return session

    # --- API -----------------------------------------------------------------------------------
    @api.get("/health", response_model=Health, summary="Sampler health (no usage data)")
    async def health():
        return {"ok": True, "rounds": loop.rounds if loop else 0, "last_round_ms": loop.last_round_ms if loop else None,
                "last_round_servers": loop.last_round_servers if loop else 0}

    @api.get("/me", response_model=Me, summary="Who the service thinks you are")
    async def me(caller: ApiCaller):
        return {"name": caller.name, "kind": caller.kind, "admin": caller.admin, "read_all": caller.read_all}

    @api.get("/sessions", response_model=list[SessionOut], summary="Sessions overlapping a window, newest first")
    async def list_sessions(caller: ApiCaller, start: FromQ = None, end: ToQ = None,
                            user: Annotated[str | None, Query(max_length=255)] = None,
                            state: Annotated[Literal["open", "closed", "all"], Query()] = "all",
                            limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
                            offset: Annotated[int, Query(ge=0, le=10**9)] = 0):
        if user is None and not caller.read_all:
            user = caller.name
        if user is not None:
            need_read(caller, user)
        s, e = _naive_utc(start), _naive_utc(end)
        if state == "open":
            rows = await asyncio.to_thread(store.open_sessions, user)
            rows = rows[offset:offset + limit]
        else:
            rows = await asyncio.to_thread(store.sessions, user, s, e, limit, offset)
            if state == "closed":
                rows = [r for r in rows if r.ended_at is not None]
        return [r.as_dict() for r in rows]

    @api.get("/sessions/{session_id}", response_model=SessionOut, summary="One session",
             responses={403: {"model": Message}, 404: {"model": Message}})
    async def get_session(session_id: Annotated[int, PathParam(ge=0, le=2**31 - 1)], caller: ApiCaller):
        session = await asyncio.to_thread(_session_or_404, session_id)
        need_read(caller, session.username)
        return session.as_dict()

    @api.get("/sessions/{session_id}/samples", response_model=list[SampleOut], summary="A session's samples")
    async def get_samples(session_id: Annotated[int, PathParam(ge=0, le=2**31 - 1)], caller: ApiCaller,
                          limit: Annotated[int, Query(ge=1, le=100000)] = 10000):
        session = await asyncio.to_thread(_session_or_404, session_id)
        need_read(caller, session.username)
        return await asyncio.to_thread(store.samples, session_id, limit)

    @api.post("/sessions", response_model=SessionOut, status_code=201,
              summary="Record a session by hand (admins; the hub records its own)")
    async def post_session(body: SessionIn, caller: ApiCaller):
        need_admin(caller)
        started = _naive_utc(body.start)
        sid = await asyncio.to_thread(lambda: store.open_session(
            body.user, body.server, backend=body.backend, profile=body.profile, devices=body.devices,
            device_kind=body.device_kind, n_devices=body.n_devices, started_at=started))
        return (await asyncio.to_thread(_session_or_404, sid)).as_dict()

    @api.put("/sessions/{session_id}/end", response_model=SessionOut, summary="End a session (admins)")
    async def end_session(session_id: Annotated[int, PathParam(ge=0, le=2**31 - 1)], body: SessionEnd, caller: ApiCaller):
        need_admin(caller)
        ended = _naive_utc(body.end)
        session = await asyncio.to_thread(store.end_session, session_id, body.reason, ended)
        if session is None:
            raise HTTPException(404, f"No session {session_id}.")
        return session.as_dict()

    @api.get("/users/{username}/limits", response_model=LimitsOut,
             summary="A user's limits and current use (the seed's shape, plus quota details)")
    async def user_limits(username: Annotated[str, PathParam(max_length=255)], caller: ApiCaller):
        need_read(caller, username)
        groups, is_admin = await _user_info(username)
        return await asyncio.to_thread(_limits_payload, username, groups, is_admin)

    @api.get("/users/{username}/usage", response_model=ReportOut, summary="A user's use per day")
    async def user_usage(username: Annotated[str, PathParam(max_length=255)], caller: ApiCaller,
                         start: FromQ = None, end: ToQ = None):
        need_read(caller, username)
        s, e = _window(start, end)
        rows = await asyncio.to_thread(report, store, s, e, "day", rates, [username])
        return _report_out(rows, "day", s, e)

    @api.put("/users/{username}/quota", response_model=QuotaOut, summary="Override a user's quota (admins)")
    async def put_quota(username: Annotated[str, PathParam(max_length=255)], body: QuotaIn, caller: ApiCaller):
        need_admin(caller)
        await asyncio.to_thread(lambda: store.set_override(
            "user", username, caller.name, unlimited=body.unlimited, gpu_hours_per_week=body.gpu_hours_per_week,
            cpu_hours_per_week=body.cpu_hours_per_week, max_servers=body.max_servers, max_devices=body.max_devices))
        groups, is_admin = await _user_info(username)
        limits = effective_limits(username, groups, is_admin, cfg.usage.quotas, store.overrides())
        return {**{f: getattr(limits, f) for f in ("gpu_hours_per_week", "cpu_hours_per_week", "max_servers",
                                                    "max_devices")}, "source": limits.source}

    @api.delete("/users/{username}/quota", response_model=Message, summary="Remove an admin override (admins)")
    async def delete_quota(username: Annotated[str, PathParam(max_length=255)], caller: ApiCaller):
        need_admin(caller)
        removed = await asyncio.to_thread(store.clear_override, "user", username)
        return {"message": f"override for {username} removed" if removed else f"{username} had no override"}

    def _report_out(rows, by, s, e) -> dict:
        return {"by": by, "start": s.isoformat() + "Z", "end": e.isoformat() + "Z", "currency": rates.currency,
                "rows": [r.as_dict() for r in rows], "total": totals(rows).as_dict()}

    @api.get("/report", response_model=ReportOut, summary="Usage and cost per user, group or day (everyone's: "
             "administrators and custom:mlworkshop-usage:read)",
             responses={200: {"content": {"text/csv": {}}}})
    async def get_report(caller: ApiCaller, start: FromQ = None, end: ToQ = None,
                         by: Annotated[Literal["user", "group", "day"], Query()] = "user",
                         format: Annotated[Literal["json", "csv"], Query()] = "json"):
        need_read_all(caller)
        s, e = _window(start, end)
        rows = await asyncio.to_thread(report, store, s, e, by, rates)
        if format == "csv":
            return PlainTextResponse(to_csv(rows, by, rates.currency), media_type="text/csv",
                                     headers={"Content-Disposition": f'attachment; filename="usage-{by}.csv"'})
        return _report_out(rows, by, s, e)

    @api.get("/servers", response_model=list[LiveServer], summary="Running servers with their latest sample")
    async def live_servers(caller: ApiCaller):
        sessions = await asyncio.to_thread(store.open_sessions, None if caller.read_all else caller.name)
        return await asyncio.to_thread(_live, sessions)

    @api.post("/servers/{username}/stop", response_model=Message, status_code=202, summary="Stop a server (admins)")
    async def stop_server(username: Annotated[str, PathParam(max_length=255)], caller: ApiCaller,
                          server: Annotated[str, Query(max_length=255)] = ""):
        need_admin(caller)
        open_ = [s for s in await asyncio.to_thread(store.open_sessions, username) if s.server_name == server]
        for s in open_:
            await asyncio.to_thread(store.request_stop, s.id, "admin")
        status = await hub.stop_server(username, server)
        if status in (400, 404):
            raise HTTPException(404, f"The hub has no server {server!r} for {username}.")
        if status >= 400:
            raise HTTPException(502, f"The hub refused to stop the server ({status}).")
        return {"message": f"stopping {username}'s server {server!r}"}

    # --- pages ---------------------------------------------------------------------------------
    @pages.get("/", include_in_schema=False)
    async def home(caller: Annotated[Caller, Depends(page_caller)]):
        return RedirectResponse(prefix + ("admin" if caller.read_all else "me"), status_code=302)

    @pages.get("/me", include_in_schema=False)
    async def my_page(caller: Annotated[Caller, Depends(page_caller)]):
        groups, is_admin = await _user_info(caller.name)

        def build():
            payload = _limits_payload(caller.name, groups, is_admin)
            now = utcnow()
            rows = report(store, week_start(now), now, "user", rates, [caller.name], now=now)
            running = _live(store.open_sessions(caller.name))
            used = payload["used_this_week"]
            return dashboard.user_page(prefix=prefix, who=caller.name, admin=caller.read_all, limits=payload["quota"],
                                       used=used, remaining=payload["remaining"], week_row=rows[0] if rows else None,
                                       running=running, currency=rates.currency,
                                       verdict={"state": payload["state"], "message": payload["message"]})

        return HTMLResponse(await asyncio.to_thread(build))

    @pages.get("/admin", include_in_schema=False)
    async def admin_page(request: Request, caller: Annotated[Caller, Depends(page_caller)]):
        if not caller.read_all:
            return HTMLResponse(dashboard.error_page(prefix, caller.name, 403, "Only administrators see everyone's usage."),
                                403)

        def build():
            now = utcnow()
            week = report(store, week_start(now), now, "user", rates, now=now)
            total = totals(week)
            month_start = dt.datetime.combine(now.date() - dt.timedelta(days=29), dt.time())
            by_day = {r.key: r for r in report(store, month_start, now, "day", rates, now=now)}
            days = []
            for i in range(30):
                key = (month_start.date() + dt.timedelta(days=i)).isoformat()
                r = by_day.get(key)
                days.append((key, (r.gpu_hours + r.npu_hours) if r else 0.0, r.cpu_hours if r else 0.0))
            top = sorted(week, key=lambda r: (-r.cost, -(r.gpu_hours + r.npu_hours), -r.cpu_hours, r.key))[:10]
            live = _live(store.open_sessions())
            return dashboard.admin_page(
                prefix=prefix, who=caller.name,
                week={"cpu_hours": total.cpu_hours, "gpu_hours": total.gpu_hours + total.npu_hours,
                      "mem_gib_hours": total.mem_gib_hours, "cost": total.cost},
                month_days=days, top=top, live=live, currency=rates.currency,
                xsrf=request.cookies.get(XSRF_COOKIE, ""), sample_every=cfg.usage.sample_every)

        return HTMLResponse(await asyncio.to_thread(build))

    @app.middleware("http")
    async def refuse_control_characters(request: Request, call_next):
        from urllib.parse import unquote

        raw = unquote(request.url.path) + unquote(request.url.query)
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in raw):
            return PlainTextResponse("Control characters are not allowed in the URL.", status_code=400)
        return await call_next(request)

    app.include_router(api)
    app.include_router(pages)
    return app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname).1s %(asctime)s usage] %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    import uvicorn

    settings = ServiceSettings.from_env()
    site = Site(Path(os.environ["MLWORKSHOP_SITE"]))
    from ..hub.usage_hooks import usage_db_url
    from ..hub.usage_service import service_config

    cfg = service_config(os.environ, site)  # a root hub's service cannot read mlworkshop.yaml itself

    # opened lazily and retried: a usage database that is down must not stop the service (JupyterHub
    # gives up on the whole hub when a managed service exits while it starts)
    store = LazyStore(usage_db_url(cfg, site), on_open=lambda s: s.sync_rates(cfg.usage.rates))
    hub = HubClient(settings.api_url, settings.token)
    loop = UsageLoop(store, hub, cfg)
    app = create_app(settings, cfg, store, hub, loop)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                            timeout_graceful_shutdown=1, access_log=False)
    server = uvicorn.Server(config)
    parent = os.getppid()

    async def serve():
        async def orphan_watch():  # the hub was killed: a service nobody manages must not linger
            while not server.should_exit:
                if os.getppid() != parent:
                    log.warning("The hub is gone; the usage service stops")
                    server.should_exit = True
                await asyncio.sleep(1)

        watch = asyncio.create_task(orphan_watch())
        try:
            await server.serve()
        finally:
            watch.cancel()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:  # the hub's Ctrl-C reached us too: already shut down cleanly
        pass


if __name__ == "__main__":
    main()
