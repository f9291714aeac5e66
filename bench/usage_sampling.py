"""What sampling N running servers costs the usage service.

    .venv/bin/python bench/usage_sampling.py [--servers 100] [--rounds 20] [--pg]

Starts N process trees shaped like a server with a kernel (a parent with two children; `sleep`
processes so the machine is not loaded by the benchmark itself), opens a session per tree in a
fresh usage store, then times whole sampling rounds as the service runs them: one pass over the
process table, CPU times and RSS of every process in every tree, one INSERT of N samples.
Compared with the obvious way (psutil.Process(pid).children(recursive=True) per server).
Prints wall and CPU milliseconds per round and what that is as a share of one core at the
default 60 s sampling period. Not a timed test.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
import uuid

import psutil
from rich.console import Console
from rich.table import Table

from mlworkshop.usage.collector import ProcessSampler
from mlworkshop.usage.models import utcnow
from mlworkshop.usage.store import SampleIn, UsageStore

TREE = "sleep 3600 & sleep 3600 & wait"


def naive(roots: dict[int, int]) -> dict[int, tuple[float, int]]:
    out = {}
    for key, pid in roots.items():
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        cpu = mem = 0
        for p in procs:
            try:
                t = p.cpu_times()
                cpu += t.user + t.system
                mem += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        out[key] = (cpu, mem)
    return out


def timed(fn, rounds: int) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append((time.perf_counter() - w0) * 1000)
        cpus.append((time.process_time() - c0) * 1000)
    return walls, cpus


def pg_url() -> tuple[str, callable]:
    import psycopg

    name = "mlw_bench_" + uuid.uuid4().hex[:8]
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")

    def drop():
        with psycopg.connect(
            "host=127.0.0.1 user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    return f"postgresql://postgres@127.0.0.1:5432/{name}", drop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--pg", action="store_true", help="store samples in PostgreSQL (default: SQLite)"
    )
    args = parser.parse_args()

    procs = [
        subprocess.Popen(["sh", "-c", TREE], start_new_session=True) for _ in range(args.servers)
    ]
    drop = None
    try:
        time.sleep(1.0)
        if args.pg:
            url, drop = pg_url()
        else:
            url = f"sqlite:///{tempfile.mkdtemp()}/usage.sqlite"
        store = UsageStore(url)
        roots = {}
        for i, p in enumerate(procs):
            sid = store.open_session(f"user{i:03d}", "", pid=p.pid)
            roots[sid] = p.pid
        sampler = ProcessSampler()
        readings = sampler.sample(roots)
        assert len(readings) == args.servers and all(r.processes == 3 for r in readings.values()), (
            readings
        )

        def sample_only():
            sampler.sample(roots)

        def full_round():
            now = utcnow()
            got = sampler.sample(roots)
            store.add_samples([SampleIn(k, now, r.cpu_total, r.mem_bytes) for k, r in got.items()])

        from mlworkshop.usage.quotas import current_use, current_use_many

        for _ in range(5):  # a few rounds of samples so the quota queries have rows to sum
            full_round()

        def quota_checks():  # what enforcement adds per round when every user has a budget
            for i in range(args.servers):
                current_use(store, f"user{i:03d}")

        results = {
            "tree sampling (mlworkshop: one process-table pass)": timed(sample_only, args.rounds),
            "tree sampling (naive: children(recursive) per server)": timed(
                lambda: naive(roots), args.rounds
            ),
            f"full round: sampling + INSERT of {args.servers} rows ({'PostgreSQL' if args.pg else 'SQLite'})": timed(
                full_round, args.rounds
            ),
            f"quota check of {args.servers} users, one by one (spawn path)": timed(
                quota_checks, max(3, args.rounds // 4)
            ),
            f"quota check of {args.servers} users, batched (enforcer round)": timed(
                lambda: current_use_many(store, [f"user{i:03d}" for i in range(args.servers)]),
                args.rounds,
            ),
        }
        total_procs = len(psutil.pids())
        table = Table(
            title=f"Sampling {args.servers} servers ({args.servers * 3} processes in their trees, "
            f"{total_procs} processes on the machine, {psutil.cpu_count()} CPUs), {args.rounds} rounds"
        )
        for col in (
            "what",
            "wall ms median",
            "wall ms p95",
            "CPU ms median",
            "share of a core @60 s",
            "@10 s",
        ):
            table.add_column(col, justify="left" if col == "what" else "right")
        for what, (walls, cpus) in results.items():
            walls.sort()
            p95 = walls[min(len(walls) - 1, int(len(walls) * 0.95))]
            cpu = statistics.median(cpus)
            table.add_row(
                what,
                f"{statistics.median(walls):.1f}",
                f"{p95:.1f}",
                f"{cpu:.1f}",
                f"{cpu / 60000:.4%}",
                f"{cpu / 10000:.3%}",
            )
        Console(width=170).print(table)
        store.close()
    finally:
        for p in procs:
            try:
                import os
                import signal

                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        if drop:
            drop()


if __name__ == "__main__":
    main()
