"""Prometheus metrics of ours, beside JupyterHub's own at /hub/metrics: registered in the hub
process's default registry, which JupyterHub's metrics handler serves (scope read:metrics).

- mlworkshop_start_queue_length / mlworkshop_starts_in_flight: the start queue (hub/lifecycle.py)
- mlworkshop_device_allocations{kind}: devices handed out (exclusive mode)
- mlworkshop_quota_sessions{state}: running servers within their budget, or over it (in grace)
- mlworkshop_doctor_findings{severity}, mlworkshop_doctor_check{check} (0 ok, 1 warn, 2 error),
  mlworkshop_doctor_last_run_timestamp_seconds: the doctor's watch service's last run
- mlworkshop_last_backup_age_seconds: the newest archive in backup.dir (absent: none)

A scrape runs on the hub's event loop, so what reads a database is cached for a few seconds
and any failure leaves that metric out rather than failing the scrape.
"""

from __future__ import annotations

import json
import time

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..config import MLWorkshopConfig
from ..site import Site

CACHE_SECONDS = 10.0
RANK = {"ok": 0, "warn": 1, "error": 2}


class WorkshopCollector(Collector):
    def __init__(self, site: Site, cfg: MLWorkshopConfig):
        self.site, self.cfg = site, cfg
        self._cached: tuple[float, list] | None = None
        self._engine = None
        self._usage = None

    def describe(self):
        return []  # collected on demand (no names registered up front)

    def collect(self):
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > CACHE_SECONDS:
            self._cached = (now, list(self._slow()))
        yield from self._queue()
        yield from self._cached[1]

    def _queue(self):
        from .lifecycle import _queues

        waiting = sum(len([t for t in q.waiting if not t.done()]) for q in _queues.values())
        running = sum(q.running for q in _queues.values())
        yield GaugeMetricFamily(
            "mlworkshop_start_queue_length", "Server starts waiting for a slot.", value=waiting
        )
        yield GaugeMetricFamily(
            "mlworkshop_starts_in_flight", "Server starts running now.", value=running
        )

    def _slow(self):
        for part in (self._allocations, self._quotas, self._doctor, self._backup):
            try:
                yield from part()
            except Exception:  # noqa: BLE001 - a metric we cannot read is left out
                continue

    def _allocations(self):
        from sqlalchemy import inspect, text

        from ..db import SQLiteMode, make_engine

        if self._engine is None:
            self._engine = make_engine(
                self.site.db_url(self.cfg), SQLiteMode(synchronous=None), pool_size=1
            )
        family = GaugeMetricFamily(
            "mlworkshop_device_allocations", "Accelerators handed out, by kind.", labels=["kind"]
        )
        with self._engine.connect() as conn:
            if inspect(conn).has_table("mlw_device_allocations"):
                rows = conn.execute(
                    text("SELECT kind, count(*) FROM mlw_device_allocations GROUP BY kind")
                )
                for kind, count in rows:
                    family.add_metric([kind], count)
        yield family

    def _quotas(self):
        if not self.cfg.usage.enabled:
            return
        from ..usage.store import UsageStore

        if self._usage is None:
            self._usage = UsageStore(self.site.usage_db_url(self.cfg))
        sessions = self._usage.open_sessions()
        over = sum(s.over_limit_at is not None for s in sessions)
        family = GaugeMetricFamily(
            "mlworkshop_quota_sessions",
            "Running servers within their usage budget, or over it (stopped after the grace time).",
            labels=["state"],
        )
        family.add_metric(["within"], len(sessions) - over)
        family.add_metric(["over"], over)
        yield family

    def _doctor(self):
        from ..ops.doctor.watch import state_file

        path = state_file(self.site)
        if not path.exists():
            return
        data = json.loads(path.read_text())
        counts = GaugeMetricFamily(
            "mlworkshop_doctor_findings",
            "Findings of the doctor's last run, by severity.",
            labels=["severity"],
        )
        checks: dict[str, int] = {}
        for finding in data.get("findings", []):
            checks[finding["id"]] = max(checks.get(finding["id"], 0), RANK[finding["severity"]])
        for severity in RANK:
            counts.add_metric(
                [severity], sum(1 for f in data.get("findings", []) if f["severity"] == severity)
            )
        yield counts
        each = GaugeMetricFamily(
            "mlworkshop_doctor_check",
            "Each doctor check's result in its last run: 0 ok, 1 warn, 2 error.",
            labels=["check"],
        )
        for check, rank in sorted(checks.items()):
            each.add_metric([check], rank)
        yield each
        yield GaugeMetricFamily(
            "mlworkshop_doctor_last_run_timestamp_seconds",
            "When the doctor's watch service last ran (Unix time).",
            value=data["time"],
        )

    def _backup(self):
        from ..ops.doctor.site_checks import newest_backup

        newest = newest_backup(self.site, self.cfg)
        if newest is None:
            return
        yield GaugeMetricFamily(
            "mlworkshop_last_backup_age_seconds",
            "Age of the newest backup archive in backup.dir.",
            value=time.time() - newest[1],
        )


_registered: dict[str, WorkshopCollector] = {}


def register_metrics(site: Site, cfg: MLWorkshopConfig) -> WorkshopCollector:
    """Once per hub process and site."""
    key = str(site.root)
    if key not in _registered:
        _registered[key] = WorkshopCollector(site, cfg)
        REGISTRY.register(_registered[key])
    return _registered[key]
