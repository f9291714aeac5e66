"""What the usage service's routes share: its settings, config, store, hub client and sampling
loop, and the views that both the API and the pages are built from (a user's limits and use,
the running servers with their latest sample).

One ServiceContext per app, kept on `app.state.usage` by app.py; routes get it as a FastAPI
dependency (`ctx: Ctx`), so api.py, pages.py and security.py are plain modules, not closures
inside create_app, and a test can build a context of its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from ..accelerators.profiles import server_resources
from ..config import MLWorkshopConfig
from .hubclient import HubClient
from .models import utcnow
from .quotas import current_use, effective_limits, remaining, running_verdict
from .reports import Rates
from .sampling import UsageLoop
from .settings import ServiceSettings
from .store import LazyStore, SessionInfo, UsageStore

GIB = 1024**3


@dataclass
class ServiceContext:
    settings: ServiceSettings
    cfg: MLWorkshopConfig
    store: UsageStore | LazyStore
    hub: HubClient
    loop: UsageLoop | None = None
    rates: Rates = field(init=False)
    prefix: str = field(init=False)  # always ends with "/"

    def __post_init__(self) -> None:
        prefix = self.settings.prefix
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.rates = Rates.of(self.cfg.usage.rates)

    @property
    def base(self) -> str:
        """The prefix without its last slash, for mounting routers."""
        return self.prefix.rstrip("/")

    def session_or_404(self, session_id: int) -> SessionInfo:
        session = self.store.get_session(session_id)
        if session is None:
            raise HTTPException(404, f"No session {session_id}.")
        return session

    def live(self, sessions: list[SessionInfo]) -> list[dict]:
        """Running servers with their latest sample (LiveServer's shape)."""
        latest = self.store.latest_samples([s.id for s in sessions])
        out = []
        for s in sessions:
            sample = latest.get(s.id)
            out.append(
                {
                    "session_id": s.id,
                    "user": s.username,
                    "server": s.server_name,
                    "profile": s.profile,
                    "devices": s.devices,
                    "start": s.started_at.isoformat(timespec="seconds") + "Z",
                    "cpu_percent": sample["cpu_percent"] if sample else None,
                    "mem_mib": sample["mem_bytes"] / 2**20 if sample else None,
                    "gpu_util": sample["gpu_util"] if sample else None,
                    "sampled_at": sample["ts"].isoformat(timespec="seconds") + "Z"
                    if sample
                    else None,
                }
            )
        return out

    async def user_info(self, username: str) -> tuple[list[str], bool]:
        """A user's groups and admin flag, from the hub; while the hub does not answer, the groups
        their latest session recorded (and not admin)."""
        try:
            model = await self.hub.user(username)
        except Exception:  # noqa: BLE001 - the hub is busy: fall back to what the sessions recorded
            model = None
        if model is None:
            recent = await asyncio.to_thread(self.store.sessions, username, None, None, 1)
            return (recent[0].groups if recent else []), False
        return list(model.get("groups") or []), bool(model.get("admin"))

    def limits_payload(self, username: str, groups: list[str], is_admin: bool) -> dict:
        """LimitsOut's shape: what the user may use, uses now and has used this week (blocking)."""
        cfg, store = self.cfg, self.store
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
            p_cpu, p_bytes = server_resources(
                profiles, s.n_devices if s else 0, bool(s) and s.profile == "shared"
            )
            p_mem = None if p_bytes is None else p_bytes / GIB
            cpu_none |= p_cpu is None
            mem_none |= p_mem is None
            cpu_limit += p_cpu or 0.0
            mem_limit += p_mem or 0.0
        gpu_limit = limits.max_devices
        if gpu_limit is None:
            from ..accelerators import effective_limit

            gpu_limit = effective_limit(username, groups, is_admin, cfg.accelerators).max_devices
        verdict = running_verdict(
            limits, used, cfg.usage.warn_at, True, cfg.usage.enforce_cpu_only
        )  # for display
        oom_kills, oom_message = self.out_of_memory(username)
        return {
            "cpu_limit_cores": None if cpu_none else round(cpu_limit, 3),
            "memory_limit_gib": None if mem_none else round(mem_limit, 3),
            "gpu_limit": gpu_limit,
            "usage": {
                "cpu_cores": round(
                    sum((latest[s.id]["cpu_percent"] / 100) for s in running if s.id in latest), 3
                ),
                "memory_gib": round(
                    sum(latest[s.id]["mem_bytes"] for s in running if s.id in latest) / GIB, 3
                ),
                "gpu": sum(s.n_devices for s in running),
            },
            "quota": {
                "gpu_hours_per_week": limits.gpu_hours_per_week,
                "cpu_hours_per_week": limits.cpu_hours_per_week,
                "max_servers": limits.max_servers,
                "max_devices": limits.max_devices,
                "source": limits.source,
            },
            "used_this_week": {
                "gpu_hours": round(used.gpu_hours, 6),
                "cpu_hours": round(used.cpu_hours, 6),
                "servers": used.servers,
                "devices": used.devices,
            },
            "remaining": left.as_dict(),
            "state": verdict.state,
            "message": " ".join(m for m in (oom_message, verdict.message) if m),
            "oom_kills": oom_kills,
        }

    def out_of_memory(self, username: str) -> tuple[int | None, str]:
        """How often the kernel's OOM killer stopped a process of this user's running server (its
        cgroup, local backend), and a sentence saying so; (None, "") where that cannot be known."""
        cfg = self.cfg
        if cfg.spawner.backend != "local":
            return None, ""
        from .. import cgroups

        hierarchy = cgroups.detect()
        try:
            group = hierarchy and hierarchy.controller_dir(
                "memory", cfg.spawner.local.user_prefix + username
            )
        except cgroups.CgroupError:
            return None, ""
        kills = cgroups.oom_kills_in(hierarchy, group) if group else None
        if not kills:
            return kills, ""
        limit = cgroups.memory_limit_in(hierarchy, group)
        within = f" within its limit of {cgroups.describe_bytes(limit)}" if limit else ""
        return kills, (
            f"Your server ran out of memory{within}: the kernel's out-of-memory killer stopped "
            f"{kills} of its processes (usually a notebook's kernel, which then restarts). "
            "Use less memory at once (smaller batches or data), or ask for a larger profile."
        )


def service_context(request: Request) -> ServiceContext:
    return request.app.state.usage


Ctx = Annotated[ServiceContext, Depends(service_context)]
