#!/usr/bin/env python3
"""A hub restart in the middle of class: N students' servers run, the hub stops and starts again.

How long until the hub answers /hub/health again, and how long was each student's own server out
of reach through the proxy (each student's HTTP client keeps the cookies of their sign-in and
GETs /user/<name>/api/status once a second from before the stop until after the restart, about
what an open JupyterLab asks of its server; the longest run of failed answers is that student's
outage)? Is any usage session lost: is every
session open before the restart still open after it, with no second one for the same server? Stock JupyterHub
6.1.1 (bench/rush.py's: NativeAuthenticator, SimpleLocalProcessSpawner, its defaults) and
mlworkshop (default config) one after the other in the same run, one table.

    .venv/bin/python bench/hub_restart.py --n 60          (as root; ~10 minutes)
    .venv/bin/python bench/hub_restart.py --n 10 --only mlworkshop

The stop is the one an admin's Ctrl-C or `systemctl restart` sends (SIGINT to the hub's process
group); the start is the same command as before, on the same site.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rush  # noqa: E402  (the hubs under test, the students' sign-in, the stock venv)

GIVE_UP = 120.0  # seconds after the start before a server counts as unreachable


async def sign_in_all(hub: rush.HubUnderTest, n: int) -> list[tuple[str, httpx.AsyncClient]]:
    """Every student logs in and starts their server, a few at a time (not a rush: the class has
    been running for a while when the hub restarts). Returns each student's client."""
    gate = asyncio.Semaphore(6)
    clients = []

    async def one(name: str) -> None:
        client = httpx.AsyncClient(base_url=hub.url, timeout=rush.READY_DEADLINE)
        async with gate:
            await rush.open_lab(client, name, time.monotonic() + rush.READY_DEADLINE, {}, 0)
        clients.append((name, client))

    await asyncio.gather(*(one(f"student{i}") for i in range(n)))
    return clients


async def watch(client: httpx.AsyncClient, name: str, t0: list, done: asyncio.Event) -> dict:
    """Ask the student's server once a second until `done`: the longest outage (s, to within a
    second), and when it first answered after the hub's start (t0[0]), or None if it never did.
    (Ten times a second for 60 students was 600 requests a second on two cores: it doubled the
    hub's restart time it was there to measure.)"""
    longest, outage_began, first_after = 0.0, None, None
    while not done.is_set():
        asked = time.monotonic()
        try:
            answered = (await client.get(f"/user/{name}/api/status", timeout=5)).status_code == 200
        except httpx.HTTPError:
            answered = False
        now = time.monotonic()
        if answered:
            if outage_began is not None:
                longest, outage_began = max(longest, asked - outage_began), None
            if t0 and first_after is None and asked >= t0[0]:
                first_after = now - t0[0]
        elif outage_began is None:
            outage_began = asked
        await asyncio.sleep(1.0)
    if outage_began is not None:  # out of reach until the end: never back
        return {"outage": None, "back": None}
    return {"outage": longest, "back": first_after}


def health_back(url: str, t0: float) -> float | None:
    with httpx.Client(base_url=url, timeout=2) as client:
        while time.monotonic() - t0 < GIVE_UP:
            try:
                if client.get("/hub/health").status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    return None


def open_sessions(hub: rush.HubUnderTest) -> dict[str, list[int]]:
    """mlworkshop's usage sessions not ended, by user (stock records none)."""
    if hub.name != "mlworkshop":
        return {}
    from mlworkshop.config import load_config
    from mlworkshop.site import Site

    path = Site(hub.workdir).usage_db_url(load_config(hub.workdir)).removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT username, id FROM mlw_usage_sessions WHERE ended_at IS NULL"
        ).fetchall()
    sessions: dict[str, list[int]] = {}
    for user, session in rows:
        sessions.setdefault(user, []).append(session)
    return sessions


async def restart_once(hub: rush.HubUnderTest, n: int) -> dict:
    clients = await sign_in_all(hub, n)
    before = open_sessions(hub)
    t0: list[float] = []
    done = asyncio.Event()
    watching = [asyncio.create_task(watch(c, name, t0, done)) for name, c in clients]
    await asyncio.sleep(1)  # a second of class as usual
    stopped_at = time.monotonic()
    await asyncio.to_thread(hub.stop)
    stop_took = time.monotonic() - stopped_at
    t0.append(time.monotonic())
    hub.launch()
    health = await asyncio.to_thread(health_back, hub.url, t0[0])
    await asyncio.sleep(5)  # the usage service's first pass after the restart; servers found again
    done.set()
    watched = await asyncio.gather(*watching)
    after = open_sessions(hub)
    for _, client in clients:
        await client.aclose()
    back = [w["back"] for w in watched if w["back"] is not None]
    outages = sorted(w["outage"] for w in watched if w["outage"] is not None)
    kept = sum(1 for user, ids in before.items() if after.get(user) == ids)
    return {
        "hub": hub.name,
        "n": n,
        "stop": stop_took,
        "health": health,
        "reachable": len(back),
        "all_reachable": max(back) if len(back) == n else None,
        "outage_p50": outages[len(outages) // 2] if len(outages) == n else None,
        "outage_max": outages[-1] if len(outages) == n else None,
        "sessions_before": sum(len(v) for v in before.values()),
        "sessions_kept": kept,
        "sessions_after": sum(len(v) for v in after.values()),
    }


def run_one(kind: str, n: int) -> dict:
    hub = rush.start_stock(n) if kind == "stock" else rush.start_mlworkshop(n)
    try:
        return asyncio.run(restart_once(hub, n))
    finally:
        rush.stop_and_clean(hub, n)


def print_table(rows: list[dict]) -> None:
    f = rush.fmt
    v = rush.versions()
    print(
        f"\nHub restart with servers running on {os.cpu_count()} cores, JupyterHub "
        f"{v['jupyterhub']} (`bench/hub_restart.py`)\n"
    )
    print(
        "| hub | N servers | stop (s) | `/hub/health` back (s) | servers reachable after | every "
        "server reachable (s) | each student's server out of reach p50 / max (s) | usage sessions "
        "open before / kept / open after |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:

        def g(key, r=r):
            return f(r[key]) if r[key] is not None else "–"

        sessions = (
            f"{r['sessions_before']} / {r['sessions_kept']} / {r['sessions_after']}"
            if r["hub"] == "mlworkshop"
            else "– (none recorded)"
        )
        print(
            f"| {r['hub']} | {r['n']} | {f(r['stop'])} | {g('health')} | {r['reachable']}/{r['n']} "
            f"| {g('all_reachable')} | {g('outage_p50')} / {g('outage_max')} | {sessions} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--only", choices=["stock", "mlworkshop"])
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("Run as root: mlworkshop creates a system account per student.")
    rows = []
    for kind in ("stock", "mlworkshop"):
        if args.only and kind != args.only:
            continue
        print(f"{kind}: {args.n} servers, then a hub restart ...", flush=True)
        rows.append(run_one(kind, args.n))
        print_table(rows[-1:])
    print_table(rows)


if __name__ == "__main__":
    main()
