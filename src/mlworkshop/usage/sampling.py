"""The usage service's sampling loop: every usage.sample_every seconds it samples each open
session's processes (local backend), container (docker) or pod (kubernetes), stores the samples, and warns or stops
the servers of users over their weekly budget (after usage.grace_minutes).

It runs as a task of the service's event loop (app.py starts it with the app); blocking work
(the database, /proc) goes to threads, so the API answers while a round runs.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..config import MLWorkshopConfig
from .collector import ContainerSampler, GpuSampler, ProcessSampler
from .hubclient import HubClient
from .models import utcnow
from .quotas import current_use_many, effective_limits, running_verdict
from .store import LazyStore, SampleIn, SessionInfo, UsageStore

log = logging.getLogger("mlworkshop.usage")


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
        docker = getattr(
            cfg.spawner, "docker", None
        )  # the docker backend's engine (podman works too)
        return getattr(docker, "url", None) or None

    async def sweep_lost(self) -> list[SessionInfo]:
        """At start: sessions open in the store whose server the hub does not know are closed as
        lost (their end is their last sample). The hub closes its own dead servers itself."""
        users = await self.hub.active_users()
        alive = {(u["name"], name) for u in users for name in (u.get("servers") or {})}
        closed = await asyncio.to_thread(self.store.close_lost, alive)
        for s in closed:
            log.warning(
                "Session %s of %s/%s was open but the hub has no such server: closed as lost",
                s.id,
                s.username,
                s.server_name,
            )
        return closed

    def _sample(self, sessions: list[SessionInfo]) -> list[SampleIn]:
        now = utcnow()
        local = {s.id: s.pid for s in sessions if s.pid and s.backend == "local"}
        containers = {
            s.id: s.container_id for s in sessions if s.container_id and s.backend == "docker"
        }
        readings = (
            self.processes.sample(local, self.gpu if self.gpu.available else None) if local else {}
        )
        if containers:
            readings.update(self.containers.sample(containers))
        pods = {
            s.id: s.container_id for s in sessions if s.container_id and s.backend == "kubernetes"
        }
        if pods:  # the kubernetes backend's pods, from their nodes' kubelets
            from .k8s_stats import pod_readings

            readings.update(pod_readings(self.cfg.spawner.kubernetes.kubeconfig, pods))
        return [
            SampleIn(
                sid, now, r.cpu_total, r.mem_bytes, r.gpu_util, r.gpu_mem_bytes, r.cpu_departed
            )
            for sid, r in readings.items()
        ]

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
            limits = effective_limits(
                username, groups, bool(info.get("admin")), cfg.quotas, overrides
            )
            if limits.gpu_hours_per_week is not None or limits.cpu_hours_per_week is not None:
                budgets[username] = limits
        if not budgets:
            return
        use = await asyncio.to_thread(
            current_use_many, self.store, list(budgets), now
        )  # one query for all
        for username, limits in budgets.items():
            mine, used = by_user[username], use[username]
            for s in mine:
                verdict = running_verdict(
                    limits, used, cfg.warn_at, s.n_devices > 0, cfg.enforce_cpu_only
                )
                if verdict.state in ("warn", "over") and s.warned_at is None:
                    await asyncio.to_thread(self.store.mark, s.id, warned_at=now)
                    log.warning(
                        "Quota warning for %s (server %r): %s",
                        username,
                        s.server_name,
                        verdict.message,
                    )
                if verdict.state == "over" and verdict.enforce:
                    if s.over_limit_at is None:
                        await asyncio.to_thread(self.store.mark, s.id, over_limit_at=now)
                        log.warning(
                            "%s is over quota; server %r stops in %g min unless the quota grows",
                            username,
                            s.server_name,
                            cfg.grace_minutes,
                        )
                        if cfg.grace_minutes > 0:
                            continue
                        over_since = now
                    else:
                        over_since = s.over_limit_at
                    if (
                        now - over_since
                    ).total_seconds() >= cfg.grace_minutes * 60 and s.id not in self.stopping:
                        self.stopping.add(s.id)
                        await asyncio.to_thread(self.store.request_stop, s.id, "quota")
                        status = await self.hub.stop_server(username, s.server_name)
                        log.warning(
                            "Stopped %s's server %r at the quota limit (hub answered %s)",
                            username,
                            s.server_name,
                            status,
                        )
                elif s.over_limit_at is not None and verdict.state != "over":
                    await asyncio.to_thread(
                        self.store.mark, s.id, over_limit_at=None
                    )  # the quota grew

    async def run(self, every: float, begins: asyncio.Event | None = None) -> None:
        if begins is not None:
            await begins.wait()
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
                log.error(
                    "Sampling round failed: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG)
                )
            await asyncio.sleep(max(0.05, every - (time.monotonic() - started)))
