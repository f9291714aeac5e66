#!/usr/bin/env python3
"""The first minute of class with real browsers: N students log in at once in Chromium.

Each student is a Chromium context (Debian's /usr/bin/chromium through Playwright): sign in, wait
for JupyterLab's shell, open a new notebook from the launcher, wait for its kernel, run `1+1` and
wait until `2` is shown; then reload the page and wait for the shell again (what a second visit
costs). Stock JupyterHub 6.1.1 (NativeAuthenticator, SimpleLocalProcessSpawner, the same
configurable-http-proxy; set up by bench/rush.py) and mlworkshop (default config) run one after
the other in the same run, and one table is printed.

    sudo .venv/bin/python bench/browser_rush.py --n 10          (as root; a few minutes)
    sudo .venv/bin/python bench/browser_rush.py --n 2 --only mlworkshop

Bytes and requests are counted by Chromium itself (DevTools' Network.loadingFinished: bytes on the
wire, headers included; websocket frames not counted). CPU is every process's, read every 0.2 s,
split into hub, proxy, servers, kernels, fork server, browser and the rest: the browser shares
this machine, so read the server side's CPU per student as the figure and the times as secondary.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rush  # noqa: E402  (the hubs under test, the CPU sampler and the stock venv come from there)

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
DEADLINE_MS = 240_000
SERVER_SIDE = ("hub", "proxy", "servers", "kernels", "fork server", "usage service", "idle culler")


class BrowserCpu(rush.CpuBreakdown):
    """rush.py's sampler, with the browser, and servers told from kernels."""

    def kind(self, proc: psutil.Process) -> str:
        name = proc.name()
        if name == "mlw-kernel":
            return "kernels"
        if name == "mlw-server":
            return "servers"
        cmd = " ".join(proc.cmdline())
        if "chrom" in name or "chromium" in cmd:
            return "browser"
        if "ipykernel" in cmd:
            return "kernels"
        if "singleuser" in cmd:
            return "servers"
        kind = super().kind(proc)
        return "servers" if kind == "servers and kernels" else kind


@dataclass
class Student:
    name: str
    shell_at: float | None = None
    two_at: float | None = None
    error: str | None = None
    bytes_first: int = 0
    requests_first: int = 0
    bytes_reload: int = 0
    requests_reload: int = 0
    reruns: int = 0
    _phase: str = "first"
    _counts: dict = field(default_factory=lambda: {"first": [0, 0], "reload": [0, 0]})

    def count(self, event: dict) -> None:
        self._counts[self._phase][0] += int(event.get("encodedDataLength") or 0)

    def request(self, _event: dict) -> None:
        self._counts[self._phase][1] += 1


async def one_student(browser, base: str, student: Student, t0: float) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = await context.new_page()
        cdp = await context.new_cdp_session(page)
        cdp.on("Network.loadingFinished", student.count)
        cdp.on("Network.requestWillBeSent", student.request)
        await cdp.send("Network.enable")
        await page.goto(f"{base}/hub/login")  # then /hub/spawn, the spawn page, the lab
        await page.fill("input[name=username]", student.name)
        await page.fill("input[name=password]", rush.PASSWORD)
        await page.click("input[type=submit], button[type=submit]")
        await page.wait_for_selector(
            ".jp-LauncherCard[data-category='Notebook']", timeout=DEADLINE_MS
        )
        student.shell_at = time.monotonic() - t0
        await page.click(".jp-LauncherCard[data-category='Notebook']")
        await page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
            timeout=DEADLINE_MS
        )
        editor = page.locator(".jp-Notebook .jp-Cell .cm-content").first
        await editor.click()
        await page.keyboard.type("1+1")
        output = page.locator(".jp-OutputArea-output", has_text="2").first
        # JupyterLab sometimes drops a run asked for while it connects a new notebook's kernel;
        # a student presses Shift-Enter again (counted as a rerun)
        for attempt in range(4):
            if attempt:
                student.reruns += 1
                await editor.click()
            await page.keyboard.press("Control+Enter")
            try:
                await output.wait_for(timeout=20_000)
                break
            except Exception:  # noqa: BLE001 - Playwright's TimeoutError: press again
                continue
        await output.wait_for(timeout=1_000)
        student.two_at = time.monotonic() - t0
        student.bytes_first, student.requests_first = student._counts["first"]
        student._phase = "reload"
        await page.reload()
        await page.wait_for_selector("#jp-main-dock-panel", timeout=DEADLINE_MS)
        await page.wait_for_load_state("networkidle", timeout=DEADLINE_MS)
        student.bytes_reload, student.requests_reload = student._counts["reload"]
    except Exception as exc:  # noqa: BLE001 - one student's failure is a row, not the end
        student.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    finally:
        await context.close()


async def browser_rush(hub: rush.HubUnderTest, n: int) -> dict:
    from playwright.async_api import async_playwright

    students = [Student(f"student{i}") for i in range(n)]
    sampler = BrowserCpu(hub)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        sampling = asyncio.create_task(sampler.run())
        await asyncio.sleep(0.5)
        t0 = time.monotonic()
        await asyncio.gather(*(one_student(browser, hub.url, s, t0) for s in students))
        sampler.stop = True
        await sampling
        await browser.close()
    ok = [s for s in students if s.error is None]
    cpu = sampler.totals()
    server_side = sum(v for k, v in cpu.items() if k in SERVER_SIDE)

    def mean(values):
        return statistics.mean(values) if values else float("nan")

    return {
        "hub": hub.name,
        "n": n,
        "failed": n - len(ok),
        "errors": [s.error for s in students if s.error],
        "shell_last": max((s.shell_at for s in ok), default=float("nan")),
        "two_p50": statistics.median([s.two_at for s in ok]) if ok else float("nan"),
        "two_last": max((s.two_at for s in ok), default=float("nan")),
        "mb_first": mean([s.bytes_first / 1e6 for s in ok]),
        "req_first": mean([s.requests_first for s in ok]),
        "mb_reload": mean([s.bytes_reload / 1e6 for s in ok]),
        "req_reload": mean([s.requests_reload for s in ok]),
        "reruns": sum(s.reruns for s in ok),
        "server_cpu_per_student": server_side / n,
        "cpu": cpu,
    }


def settle(hub: rush.HubUnderTest, quiet: float = 0.15, timeout: float = 120) -> None:
    """Wait until the hub and what it started (fork server preloading, services importing) have
    finished starting: their start-up is not the students' cost."""
    stack = psutil.Process(hub.hub_pid())

    def busy() -> float:
        total = 0.0
        for proc in [stack, *stack.children(recursive=True)]:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                continue
        return total

    deadline = time.monotonic() + timeout
    last = busy()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = busy()
        if now - last < quiet:
            return
        last = now


def run_one(kind: str, n: int) -> dict:
    hub = rush.start_stock(n) if kind == "stock" else rush.start_mlworkshop(n)
    try:
        settle(hub)
        return asyncio.run(browser_rush(hub, n))
    finally:
        rush.stop_and_clean(hub, n)


def print_table(rows: list[dict]) -> None:
    f = rush.fmt
    v = rush.versions()
    print(
        f"\nBrowser rush on {os.cpu_count()} cores, JupyterHub {v['jupyterhub']}, JupyterLab "
        f"{v['jupyterlab']}, Chromium (`bench/browser_rush.py`)\n"
    )
    print(
        "| hub | N | failed | last shell (s) | `2` shown p50 / last (s) | MB / requests per student "
        "(first load) | MB / requests (reload) | server-side CPU-s per student | reruns |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['hub']} | {r['n']} | {r['failed']}/{r['n']} | {f(r['shell_last'])} | "
            f"{f(r['two_p50'])} / {f(r['two_last'])} | {f(r['mb_first'], 2)} / {f(r['req_first'], 0)} | "
            f"{f(r['mb_reload'], 2)} / {f(r['req_reload'], 0)} | "
            f"{f(r['server_cpu_per_student'], 2)} | {r['reruns']} |"
        )
    print("\nCPU seconds by kind of process during the rush:\n")
    for r in rows:
        print(f"- {r['hub']} N={r['n']}: " + ", ".join(f"{k} {c:.1f}" for k, c in r["cpu"].items()))
        for error in r["errors"][:5]:
            print(f"  failed: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10])
    parser.add_argument("--only", choices=["stock", "mlworkshop"])
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("Run as root: mlworkshop creates a system account per student.")
    if not Path(CHROMIUM).exists():
        sys.exit("Debian's chromium is missing: `make test` installs it (scripts/system-deps.sh).")
    rows = []
    for n in args.n:
        for kind in ("stock", "mlworkshop"):
            if args.only and kind != args.only:
                continue
            print(f"{kind}: {n} students in Chromium ...", flush=True)
            rows.append(run_one(kind, n))
            print_table(rows[-1:])
    print_table(rows)


if __name__ == "__main__":
    main()
