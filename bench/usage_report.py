"""Reports over a year of samples for 500 users, on PostgreSQL.

    .venv/bin/python bench/usage_report.py [--users 500] [--sessions-per-week 3] [--hours 2] \
        [--sample-every 300] [--keep]

Creates a fresh database, migrates it with the store's Alembic revision, loads a year of sessions
(each user: N sessions a week of H hours, a quarter of them on one GPU, users in 10 groups) and
their samples with COPY, runs ANALYZE, then times the reports the API and CLI run: a year by
user / group / day, one week by user, one user's year, and one user's quota check (this week's
use). Prints a table. Not a timed test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import time
import uuid

import psycopg
from rich.console import Console
from rich.table import Table

from mlworkshop.usage.quotas import current_use
from mlworkshop.usage.reports import Rates, report
from mlworkshop.usage.store import UsageStore

ADMIN = "host=127.0.0.1 user=postgres dbname=postgres"
GIB = 1024**3


def load(
    dsn: str,
    users: int,
    per_week: int,
    hours: float,
    every: int,
    year_end: dt.datetime,
    seed: int = 5,
) -> tuple[int, int, float]:
    rng = random.Random(seed)
    start_of_year = year_end - dt.timedelta(days=365)
    per_session = int(hours * 3600 // every)
    sessions = samples = 0
    t0 = time.perf_counter()
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        sid = 0
        with cur.copy(
            "COPY mlw_usage_sessions (id, username, server_name, backend, profile, device_kind, n_devices, "
            "devices, groups, started_at, ended_at, end_reason, last_seen, cpu_total) FROM STDIN"
        ) as copy:
            plan = []
            for u in range(users):
                name = f"user{u:03d}"
                groups = json.dumps([f"group{u % 10}"])
                for week in range(52):
                    for k in range(per_week):
                        sid += 1
                        start = start_of_year + dt.timedelta(
                            weeks=week, days=k * 2, hours=8 + rng.random() * 8
                        )
                        end = start + dt.timedelta(hours=hours)
                        gpu = sid % 4 == 0
                        copy.write_row(
                            (
                                sid,
                                name,
                                "",
                                "local",
                                "gpu-1" if gpu else "cpu",
                                "nvidia" if gpu else None,
                                1 if gpu else 0,
                                '["nvidia:0"]' if gpu else "[]",
                                groups,
                                start,
                                end,
                                "stopped",
                                end,
                                0.0,
                            )
                        )
                        plan.append((sid, start))
            sessions = sid
        with cur.copy(
            "COPY mlw_usage_samples (session_id, ts, interval_s, cpu_seconds, mem_bytes) FROM STDIN"
        ) as copy:
            for sid, start in plan:
                for i in range(1, per_session + 1):
                    copy.write_row(
                        (
                            sid,
                            start + dt.timedelta(seconds=i * every),
                            float(every),
                            rng.random() * every,
                            int(GIB * (0.5 + rng.random())),
                        )
                    )
                    samples += 1
        cur.execute(
            "SELECT setval(pg_get_serial_sequence('mlw_usage_sessions', 'id'), %s)", (sessions,)
        )
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return sessions, samples, time.perf_counter() - t0


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--sessions-per-week", type=int, default=3)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--sample-every", type=int, default=300, help="seconds between two samples")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    name = "mlw_bench_report_" + uuid.uuid4().hex[:8]
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        store = UsageStore(url)  # migrates (Alembic upgrade head)
        year_end = dt.datetime(2026, 11, 16)  # a Monday: the last week is whole
        sessions, samples, load_s = load(
            f"host=127.0.0.1 user=postgres dbname={name}",
            args.users,
            args.sessions_per_week,
            args.hours,
            args.sample_every,
            year_end,
        )
        with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={name}") as conn:
            size = conn.execute(
                "SELECT pg_size_pretty(pg_database_size(current_database()))"
            ).fetchone()[0]
        rates = Rates(cpu_hour=0.05, mem_gib_hour=0.005, gpu_hour=1.0)
        year = (year_end - dt.timedelta(days=365), year_end)
        last_week = (year_end - dt.timedelta(days=7), year_end)
        one = f"user{min(42, args.users - 1):03d}"
        rows = []
        for label, fn in (
            ("year by user", lambda: report(store, *year, "user", rates, now=year_end)),
            ("year by group", lambda: report(store, *year, "group", rates, now=year_end)),
            ("year by day", lambda: report(store, *year, "day", rates, now=year_end)),
            ("last week by user", lambda: report(store, *last_week, "user", rates, now=year_end)),
            (
                "one user's year by day",
                lambda: report(store, *year, "day", rates, usernames=[one], now=year_end),
            ),
            (
                "one user's quota check (this week's use)",
                lambda: current_use(store, one, year_end - dt.timedelta(hours=1)),
            ),
        ):
            ms, result = timed(fn)
            what = (
                f"{len(result)} rows"
                if isinstance(result, list)
                else f"{result.gpu_hours:.1f} GPU-h, {result.cpu_hours:.1f} CPU-h"
            )
            rows.append((label, ms, what))
        check = report(store, *year, "user", rates, now=year_end)
        total_gpu = sum(r.gpu_hours for r in check)
        expected_gpu = sessions // 4 * args.hours
        table = Table(
            title=f"Reports on PostgreSQL: {args.users} users, {sessions:,} sessions, {samples:,} samples "
            f"(one every {args.sample_every} s), database {size}; loaded with COPY in {load_s:.1f} s"
        )
        for col in ("report", "median ms (3 runs)", "result"):
            table.add_column(col, justify="right" if col.startswith("median") else "left")
        for label, ms, what in rows:
            table.add_row(label, f"{ms:,.0f}", what)
        console = Console(width=150)
        console.print(table)
        console.print(
            f"check: GPU-hours over the year {total_gpu:,.1f} (expected {expected_gpu:,.1f})"
        )
        store.close()
    finally:
        if not args.keep:
            with psycopg.connect(ADMIN, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
