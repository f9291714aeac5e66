#!/usr/bin/env python3
"""Class rush: N students log in at once; how long until every JupyterLab answers?

Runs the same scenario against stock JupyterHub (6.1.1 + NativeAuthenticator 1.3.0 +
SimpleLocalProcessSpawner + configurable-http-proxy, installed by this script into bench/.stock)
and against mlworkshop (default config), one after the other in the same run, and prints one table.

Each simulated student does what a browser does: GET the login form, POST it with `_xsrf`,
follow to /hub/spawn, wait on the spawn progress event stream, open /user/<name>/lab (through the
OAuth redirects), start a kernel and run `1+1` over its websocket through the proxy, 20 times with
one student and 5 times each in a rush; the table has the median of each student's first round
trip (a fresh kernel's first cell) and of the ones after it.

    .venv/bin/python bench/rush.py --n 1 10 30 60          (as root; ~10 minutes)
    .venv/bin/python bench/rush.py --n 10 --only mlworkshop
    .venv/bin/python bench/rush.py --n 60 --prewarm        (servers started before the bell)

With --prewarm the servers are started before the rush and the students only log in (and open
JupyterLab, and run `1+1`): mlworkshop's with `mlworkshop class start GROUP` (the class pre-warm),
stock's the only way stock offers, the REST API as an admin service, four starts at a time (all
at once, stock's servers time out). The time until every server was up is printed with the table.

Loopback only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.hubctl import execute_request, wait_healthy  # noqa: E402  (the same readiness check the tests use)

STOCK_VENV = REPO / "bench" / ".stock"
CHP = REPO / "node_modules" / ".bin" / "configurable-http-proxy"
PASSWORD = "Rush-hour-pass-1"
READY_DEADLINE = 240.0
PROBE_NICE = -10  # the /hub/health probe's: ahead of the hub (-5) and everything else
PREWARM_DEADLINE = 600.0  # seconds for every server of a pre-warm to come up
PREWARM_GROUP = "rush"
STOCK_TOKEN = secrets.token_hex(24)  # stock's admin service, to start servers before a rush
ROUNDS_ONE, ROUNDS_RUSH = 20, 5  # `1+1` round trips per student: alone, and in a rush


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("jupyterhub", "jupyterlab", "jupyter_server")}


# --- the two hubs -------------------------------------------------------------------------
@dataclass
class HubUnderTest:
    name: str
    url: str = ""
    proc: subprocess.Popen | None = None
    workdir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="rush-", dir="/tmp"))
    )
    server_users: list[str] = field(
        default_factory=list
    )  # system accounts whose processes are servers
    command: list[str] = field(default_factory=list)  # what starts the hub (launch, relaunch)

    def launch(self) -> None:
        """Start the hub (again: a restart keeps the workdir and appends to its log)."""
        log = open(self.workdir / "hub.log", "a")
        self.proc = subprocess.Popen(
            self.command,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def hub_pid(self) -> int:
        return self.proc.pid

    def wait_up(self, timeout: float = 90) -> None:
        problem = wait_healthy(self.url, self.proc, timeout)
        if problem:
            raise RuntimeError(f"{self.name}: {problem}: see {self.workdir}/hub.log")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def ensure_stock_venv(lab_version: str) -> Path:
    python = STOCK_VENV / "bin" / "python"
    marker = STOCK_VENV / ".installed"
    if not marker.exists():
        print(f"installing stock JupyterHub into {STOCK_VENV} ...", flush=True)
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(STOCK_VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "jupyterhub==6.1.1",
                f"jupyterlab=={lab_version}",
                "jupyterhub-nativeauthenticator==1.3.0",
            ],
            check=True,
        )
        marker.touch()
    return python


STOCK_CONFIG = """
c = get_config()
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = ["{chp}"]
c.JupyterHub.db_url = "sqlite:///{workdir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{workdir}/cookie_secret"
c.JupyterHub.pid_file = "{workdir}/jupyterhub.pid"
c.ConfigurableHTTPProxy.pid_file = "{workdir}/proxy.pid"
c.JupyterHub.authenticator_class = "native"
c.NativeAuthenticator.open_signup = True
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = "{workdir}/home/{{username}}"
c.Spawner.default_url = "/lab"
c.Spawner.cmd = ["{singleuser}"]
c.Spawner.args = ["--allow-root"]
c.JupyterHub.services = [{{"name": "idle-culler", "command": ["{python}", "-m", "jupyterhub_idle_culler", "--timeout=3600"]}}, {{"name": "bench", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [{{"name": "culler", "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"], "services": ["idle-culler"]}}, {{"name": "bench", "scopes": ["admin:users", "servers"], "services": ["bench"]}}]

# NativeAuthenticator 1.3.0 fails every login on JupyterHub 6.1.1 (the removed `statsd`): the
# smallest shim that lets stock log in at all. Nothing else is changed.
from jupyterhub.handlers.base import BaseHandler
class _NoStatsd:
    def timer(self, *a, **k): return self
    def start(self): return self
    def stop(self, *a, **k): pass
    def incr(self, *a, **k): pass
BaseHandler.statsd = _NoStatsd()
"""


def start_stock(n: int) -> HubUnderTest:
    hub = HubUnderTest("stock")
    python = ensure_stock_venv(versions()["jupyterlab"])
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "jupyterhub-idle-culler"], check=True
    )
    port, hub_port, api_port = free_port(), free_port(), free_port()
    (hub.workdir / "home").mkdir()
    config = hub.workdir / "jupyterhub_config.py"
    config.write_text(
        STOCK_CONFIG.format(
            port=port,
            hub_port=hub_port,
            api_port=api_port,
            chp=CHP,
            workdir=hub.workdir,
            python=python,
            singleuser=STOCK_VENV / "bin" / "jupyterhub-singleuser",
            token=STOCK_TOKEN,
        )
    )
    hub.command = [str(python), "-m", "jupyterhub", "-f", str(config)]
    hub.launch()
    hub.url = f"http://127.0.0.1:{port}"
    hub.wait_up()
    asyncio.run(_stock_signups(hub.url, n))  # before the rush: students signed up earlier
    hub.server_users = ["root"]
    return hub


async def _stock_signups(url: str, n: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for i in range(n):
            page = await client.get("/hub/signup")
            token = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
            await client.post(
                "/hub/signup",
                data={
                    "_xsrf": token,
                    "username": f"student{i}",
                    "signup_password": PASSWORD,
                    "signup_password_confirmation": PASSWORD,
                },
            )


def start_mlworkshop(n: int) -> HubUnderTest:
    hub = HubUnderTest("mlworkshop")
    os.chmod(hub.workdir, 0o755)
    site = hub.workdir
    mlw = [sys.executable, "-m", "mlworkshop.cli.main"]
    subprocess.run([*mlw, "init", "--site", str(site)], check=True, capture_output=True)
    port = free_port()
    settings = {
        "hub.port": port,
        "hub.internal_port": free_port(),
        "hub.proxy_api_port": free_port(),
        "spawner.local.user_prefix": "rb-",
        "spawner.local.admin_group": "rb-adm",
    }
    pairs = [text for key, value in settings.items() for text in (key, str(value))]
    subprocess.run(
        [*mlw, "config", "set", *pairs, "--site", str(site)], check=True, capture_output=True
    )
    from mlworkshop.accounts.store import AccountStore
    from mlworkshop.config import load_config

    # as `mlworkshop user add` does: the site's password settings
    store = AccountStore(
        f"sqlite:///{site}/state/jupyterhub.sqlite", load_config(site).auth.password_hash_cost
    )
    for i in range(n):
        store.create(f"student{i}", PASSWORD, approved=True)
    hub.command = [*mlw, "up", "--site", str(site)]
    hub.launch()
    hub.url = f"http://127.0.0.1:{port}"
    hub.wait_up()
    hub.server_users = [f"rb-student{i}" for i in range(n)]
    return hub


def stop_and_clean(hub: HubUnderTest, n: int) -> None:
    """Stop a hub under test and what it leaves: stock's servers (it runs them as root), or
    mlworkshop's student accounts and their processes, and the proxy it keeps between restarts."""
    hub.stop()
    if hub.name == "mlworkshop":
        from mlworkshop.hub.proxy_process import stop_kept_proxy

        stop_kept_proxy(Path(hub.workdir) / "state")
    if hub.name == "stock":
        subprocess.run(
            ["pkill", "-KILL", "-f", str(STOCK_VENV / "bin" / "jupyterhub-singleuser")],
            capture_output=True,
        )
    else:
        cleanup_mlworkshop_accounts(n)


def cleanup_mlworkshop_accounts(n: int) -> None:
    for i in range(n):
        subprocess.run(["pkill", "-KILL", "-u", f"rb-student{i}"], capture_output=True)
    time.sleep(0.5)
    for i in range(n):
        subprocess.run(["userdel", f"rb-student{i}"], capture_output=True)
    subprocess.run(["groupdel", "rb-adm"], capture_output=True)


# --- one student -----------------------------------------------------------------------------
@dataclass
class StudentResult:
    name: str
    login_to_ready: float | None = None
    ready_at: float | None = None
    error: str | None = None
    rtts: list[float] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # seconds since the rush began, per step


async def wait_progress(client: httpx.AsyncClient, name: str, deadline: float) -> None:
    """Follow the spawn progress event stream, as the spawn-pending page does."""
    while time.monotonic() < deadline:
        try:
            async with client.stream(
                "GET",
                f"/hub/api/users/{name}/server/progress",
                timeout=max(1.0, deadline - time.monotonic()),
            ) as stream:
                async for line in stream.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    event = json.loads(line[5:])
                    if event.get("failed"):
                        raise RuntimeError(event.get("message", "spawn failed"))
                    if event.get("ready"):
                        return
        except httpx.HTTPError:
            pass
        # the stream ended without ready: the server may already be up
        model = await client.get(f"/hub/api/users/{name}")
        if model.status_code == 200 and (model.json().get("servers") or {}).get("", {}).get(
            "ready"
        ):
            return
        await asyncio.sleep(0.5)
    raise TimeoutError("not ready in time")


async def run_kernel(client: httpx.AsyncClient, base: str, name: str, rounds: int) -> list[float]:
    import websockets

    prefix = f"/user/{name}"
    xsrf = client.cookies.get("_xsrf", path=prefix + "/") or client.cookies.get("_xsrf") or ""
    kernel = await client.post(
        f"{prefix}/api/kernels", json={"name": "python3"}, headers={"X-XSRFToken": xsrf}
    )
    kernel.raise_for_status()
    kernel_id = kernel.json()["id"]
    cookie = "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar)
    url = base.replace("http", "ws") + f"{prefix}/api/kernels/{kernel_id}/channels"
    rtts = []
    try:
        async with websockets.connect(
            url, additional_headers={"Cookie": cookie}, open_timeout=60, max_size=None
        ) as ws:
            for _ in range(rounds):
                msg_id, request = execute_request("1+1", username=name)
                sent = time.perf_counter()
                await ws.send(request)
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 120))
                    if (
                        msg.get("parent_header", {}).get("msg_id") == msg_id
                        and msg["msg_type"] == "execute_result"
                    ):
                        assert msg["content"]["data"]["text/plain"] == "2"
                        rtts.append(time.perf_counter() - sent)
                        break
                # drain to idle so the next round starts clean
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 120))
                    if (
                        msg.get("parent_header", {}).get("msg_id") == msg_id
                        and msg["msg_type"] == "status"
                        and msg["content"]["execution_state"] == "idle"
                    ):
                        break
    finally:
        await client.delete(f"{prefix}/api/kernels/{kernel_id}", headers={"X-XSRFToken": xsrf})
    return rtts


async def open_lab(
    client: httpx.AsyncClient, name: str, deadline: float, phases: dict, t0: float
) -> None:
    """Log in, start the server as the browser's redirect to /hub/spawn does, wait for it, and
    open JupyterLab's page (through the OAuth redirects): `client` then holds the student's
    cookies for the hub and for their server. Raises on the first step that fails."""
    page = await client.get("/hub/login")
    token = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    login = await client.post(
        "/hub/login", data={"_xsrf": token, "username": name, "password": PASSWORD}
    )
    if login.status_code != 302:
        raise RuntimeError(f"login answered {login.status_code}")
    phases["logged in"] = time.monotonic() - t0
    spawn = await client.get("/hub/spawn")
    if spawn.status_code >= 400:
        raise RuntimeError(f"/hub/spawn answered {spawn.status_code}")
    phases["spawn page"] = time.monotonic() - t0
    await wait_progress(client, name, deadline)
    phases["server ready"] = time.monotonic() - t0
    lab = await client.get(f"/user/{name}/lab", follow_redirects=True)
    if lab.status_code != 200:
        raise RuntimeError(f"/user/{name}/lab answered {lab.status_code}")


async def student(base: str, name: str, t0: float, rounds: int) -> StudentResult:
    result = StudentResult(name)
    deadline = time.monotonic() + READY_DEADLINE
    async with httpx.AsyncClient(
        base_url=base, timeout=READY_DEADLINE, follow_redirects=False
    ) as client:
        try:
            started = time.monotonic()
            await open_lab(client, name, deadline, result.phases, t0)
            now = time.monotonic()
            result.login_to_ready, result.ready_at = now - started, now - t0
            result.phases["JupyterLab page"] = now - t0
            result.rtts = await run_kernel(client, base, name, rounds)
            result.phases["kernel done"] = time.monotonic() - t0
        except Exception as exc:  # noqa: BLE001 - a failure is a result
            result.error = f"{type(exc).__name__}: {exc}"[:160]
    return result


HEALTH_PROBE = """
import json, sys, threading, time, httpx
samples, stop = [], threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
with httpx.Client(base_url=sys.argv[1], timeout=30) as client:
    while not stop.is_set():
        sent = time.perf_counter()
        try:
            client.get("/hub/health")
            took = time.perf_counter() - sent
        except httpx.HTTPError:
            took = 30.0
        samples.append((time.monotonic() - took, took))
        time.sleep(0.1)
print(json.dumps(samples))
"""


class HealthProbe:
    """GET /hub/health every 0.1 s from a process of its own, so the simulated class's own event
    loop (busy with 60 students at once) does not add to the hub's measured latency; at nice
    PROBE_NICE, ahead of everything on the machine, so that its own wait for a core (a monitor
    elsewhere would not wait) is not counted as the hub's either. Until 2026-12-03 it ran at
    nice 0, beside the simulated class: its p99 then also held its own waits."""

    def __init__(self, base: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HEALTH_PROBE, base],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        # before it has imported httpx, let alone started its thread: all of it runs at this nice
        os.setpriority(os.PRIO_PROCESS, self.proc.pid, PROBE_NICE)

    def finish(self) -> list[tuple[float, float]]:
        out, _ = self.proc.communicate("", timeout=60)
        return [tuple(x) for x in json.loads(out or "[]")]


def server_pss(hub: HubUnderTest) -> tuple[float, float, int]:
    """Mean PSS (MiB) per server: its own, and with the fork server's own PSS shared out among
    the servers (what each server really costs the machine; with one server, the whole fork
    server counts)."""
    servers, extra = [], 0
    for proc in psutil.process_iter(["username", "cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if "mlworkshop.fastpath.server" in cmd and proc.ppid() == hub.hub_pid():
                extra += proc.memory_full_info().pss
                continue
            if proc.info["username"] not in hub.server_users or "ipykernel" in cmd:
                continue
            if "singleuser" in cmd or "mlworkshop.fastpath.server" in cmd:
                servers.append(proc.memory_full_info().pss)
                SERVER_CPU.append(sum(proc.cpu_times()[:2]))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    if not servers:
        return float("nan"), float("nan"), 0
    return (
        sum(servers) / len(servers) / 2**20,
        (sum(servers) + extra) / len(servers) / 2**20,
        len(servers),
    )


class CpuBreakdown:
    """Where the machine's CPU went during a rush, by kind of process: every process is read every
    0.2 s and its highest CPU time kept (a process that lives less than that is missed)."""

    def __init__(self, hub: HubUnderTest):
        self.hub_pid, self.me = hub.hub_pid(), os.getpid()
        self.students = set(getattr(hub, "server_users", []))
        self.seen: dict[int, tuple[str, float, float]] = {}  # pid -> (kind, first CPU, highest CPU)
        self.other_names: dict[int, str] = {}
        self.stop = False

    def kind(self, proc: psutil.Process) -> str:
        if proc.pid == self.hub_pid:
            return "hub"
        if proc.pid == self.me or proc.ppid() == self.me:  # and its health probe
            return "simulated class (bench)"
        cmd = " ".join(proc.cmdline())
        if proc.username() in self.students or "singleuser" in cmd:
            return "servers and kernels"
        if "configurable-http-proxy" in cmd:
            return "proxy"
        if "mlworkshop.fastpath.server" in cmd:
            return "fork server"
        if "mlworkshop.usage" in cmd or "usage_service" in cmd:
            return "usage service"
        if "culler" in cmd:
            return "idle culler"
        self.other_names[proc.pid] = " ".join(proc.cmdline())[:80] or proc.name()
        return "other"

    def sample(self) -> None:
        for proc in psutil.process_iter():
            try:
                t = proc.cpu_times()
                cpu = (
                    t.user + t.system
                )  # not children's: a stock hub reaps its servers (counted already)
                if proc.pid not in self.seen:
                    self.seen[proc.pid] = (self.kind(proc), cpu, cpu)
                else:
                    kind, first, _ = self.seen[proc.pid]
                    self.seen[proc.pid] = (kind, first, cpu)
            except psutil.Error:
                continue

    async def run(self) -> None:
        self.sample()
        self.first_pids = set(self.seen)
        while not self.stop:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(0.2)
        self.sample()

    def used(self) -> dict[int, float]:
        """CPU seconds each process used during the rush."""
        return {
            pid: last - first if pid in self.first_pids else last
            for pid, (_, first, last) in self.seen.items()
        }

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, cpu in self.used().items():
            out[self.seen[pid][0]] = out.get(self.seen[pid][0], 0.0) + cpu
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def largest_others(self, n: int = 4) -> list[tuple[str, float]]:
        """What "other" was made of: processes outside the hub's stack (noise on the machine)."""
        others = sorted(
            ((cpu, pid) for pid, cpu in self.used().items() if self.seen[pid][0] == "other"),
            reverse=True,
        )
        return [(self.other_names.get(pid, "?"), cpu) for cpu, pid in others[:n]]


async def rush(hub: HubUnderTest, n: int, rounds: int) -> dict:
    hub_proc = psutil.Process(hub.hub_pid())
    cpu_before = sum(hub_proc.cpu_times()[:2])
    machine_before, client_before = psutil.cpu_times(), sum(psutil.Process().cpu_times()[:2])
    probe = HealthProbe(hub.url)
    await asyncio.sleep(1.0)  # the probe's own start-up is not part of the rush
    breakdown = CpuBreakdown(hub) if PRINT_PHASES else None
    watcher = asyncio.create_task(breakdown.run()) if breakdown else None
    t0 = time.monotonic()
    results = await asyncio.gather(*(student(hub.url, f"student{i}", t0, rounds) for i in range(n)))
    probes = probe.finish()
    health = [took for _, took in probes]
    if breakdown:
        breakdown.stop = True
        await watcher
    cpu = sum(hub_proc.cpu_times()[:2]) - cpu_before
    machine_after = psutil.cpu_times()
    busy = sum(machine_after) - machine_after.idle - (sum(machine_before) - machine_before.idle)
    client_cpu = sum(psutil.Process().cpu_times()[:2]) - client_before
    own_pss, pss, counted = server_pss(hub)
    ok = [r for r in results if r.error is None]
    failures = [r for r in results if r.error]
    waits = sorted(r.login_to_ready for r in ok)
    # a fresh kernel's first cell, then the cells after it (still during the rush for N > 1)
    firsts = [r.rtts[0] for r in ok if r.rtts]
    rtts = sorted(x for r in ok for x in r.rtts[1:])
    health.sort()

    def pct(values, q):
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

    messages: dict[str, int] = {}
    for r in failures:  # group alike messages: ports and student numbers differ
        key = re.sub(r"\d+", "N", r.error)
        messages[key] = messages.get(key, 0) + 1
    return {
        "hub": hub.name,
        "n": n,
        "ok": len(ok),
        "failed": len(failures),
        "all_ready": max((r.ready_at for r in ok), default=float("nan"))
        if not failures
        else float("nan"),
        "p50": statistics.median(waits) if waits else float("nan"),
        "p95": pct(waits, 0.95),
        "hub_cpu": cpu,
        "pss": pss,
        "own_pss": own_pss,
        "pss_n": counted,
        "rtt_p50": statistics.median(rtts) * 1000 if rtts else float("nan"),
        "first_rtt_p50": statistics.median(firsts) * 1000 if firsts else float("nan"),
        "health_p99": pct(health, 0.99) * 1000,
        "errors": messages,
        "slow_health": sorted(
            (round(sent - t0, 2), round(took * 1000)) for sent, took in probes if took > 0.2
        )[:40],
        "machine_busy": busy,
        "client_cpu": client_cpu,
        "cpu_by_kind": breakdown.totals() if breakdown else {},
        "largest_others": breakdown.largest_others() if breakdown else [],
        "phases": {
            step: (statistics.median(v), max(v))
            for step in PHASES
            if (v := [r.phases[step] for r in ok if step in r.phases])
        },
    }


# --- pre-warm: every server up before the rush -----------------------------------------------
def prewarm(hub: HubUnderTest, n: int) -> tuple[float, int]:
    """Start the n students' servers before the rush; (seconds until all were up, how many
    were not up by PREWARM_DEADLINE)."""
    names = [f"student{i}" for i in range(n)]
    started = time.monotonic()
    if hub.name == "mlworkshop":
        from mlworkshop.cli.hubapi import HubAPI
        from mlworkshop.config import load_config
        from mlworkshop.site import Site

        site = Site(hub.workdir)
        api = HubAPI(site, load_config(site.root))
        api.add_to_group(PREWARM_GROUP, names)
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "mlworkshop.cli.main", "class", "start", PREWARM_GROUP]
            + ["--site", str(hub.workdir)],
            check=True,
            capture_output=True,
        )
        client, url = api.client, api.url
    else:
        client = httpx.Client(headers={"Authorization": f"token {STOCK_TOKEN}"}, timeout=120)
        url = f"{hub.url}/hub/api"
        asyncio.run(_stock_api_starts(url, names))
    while time.monotonic() - started < PREWARM_DEADLINE:
        ready = client.get(f"{url}/users", params={"state": "ready", "limit": 1000})
        count = len(ready.json()) if ready.status_code == 200 else 0
        if count >= n:
            return time.monotonic() - started, 0
        time.sleep(0.5)
    return float("nan"), n - count


async def _stock_api_starts(url: str, names: list[str], at_once: int = 4) -> None:
    """POST each student's server, `at_once` at a time, each waited for until it is up or has
    failed."""
    line = asyncio.Semaphore(at_once)
    headers = {"Authorization": f"token {STOCK_TOKEN}"}

    async def start(client: httpx.AsyncClient, name: str) -> None:
        async with line:
            await client.post(f"{url}/users/{name}/server", headers=headers)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                model = (await client.get(f"{url}/users/{name}", headers=headers)).json()
                server = (model.get("servers") or {}).get("", {})
                if server.get("ready") or not server.get("pending"):
                    return
                await asyncio.sleep(0.5)

    async with httpx.AsyncClient(timeout=120) as client:
        # NativeAuthenticator's sign-ups become JupyterHub users at their first login: an admin
        # who starts their servers first makes them users
        made = await client.post(f"{url}/users", json={"usernames": names}, headers=headers)
        if made.status_code not in (201, 409):
            raise RuntimeError(f"stock refused to make the users: {made.status_code} {made.text}")
        await asyncio.gather(*(start(client, name) for name in names))


def run_one(kind: str, n: int, warm: bool = False) -> dict:
    hub = start_stock(n) if kind == "stock" else start_mlworkshop(n)
    failed = True  # until the rush says otherwise: a run that raised keeps its logs too
    try:
        time.sleep(2)  # let start-up work (fork server preload, culler) finish before the rush
        if warm:
            took, missing = prewarm(hub, n)
            time.sleep(5)  # the pre-warm's own work done before the bell
        result = asyncio.run(rush(hub, n, rounds=ROUNDS_ONE if n == 1 else ROUNDS_RUSH))
        failed = bool(result["failed"])
        if warm:
            result["hub"] += " (pre-warmed)"
            result["prewarm"] = (took, missing)
        return result
    finally:
        stop_and_clean(hub, n)
        shutil.copy(hub.workdir / "hub.log", Path(tempfile.gettempdir()) / f"rush-{kind}-{n}.log")
        if failed:
            keep_logs(hub, kind, n)
        shutil.rmtree(hub.workdir, ignore_errors=True)


def keep_logs(hub: HubUnderTest, kind: str, n: int) -> None:
    """A run with a failed student keeps its hub's and every student's server log (the site is
    deleted after each run): a failure seen once may not be seen again."""
    kept = Path(tempfile.mkdtemp(prefix=f"rush-{kind}-{n}-failed-"))
    shutil.copy(hub.workdir / "hub.log", kept / "hub.log")
    if (hub.workdir / "logs").is_dir():
        shutil.copytree(hub.workdir / "logs", kept / "logs")
    print(f"  {kind} N={n}: logs of the failed run kept in {kept}", flush=True)


PRINT_PHASES = False
SERVER_CPU: list[
    float
] = []  # CPU seconds of each server so far (a rush's servers, read with their PSS)
PHASES = ("logged in", "spawn page", "server ready", "JupyterLab page", "kernel done")


def fmt(value: float, digits: int = 1) -> str:
    return "–" if value != value else f"{value:.{digits}f}"


def print_table(rows: list[dict]) -> None:
    v = versions()
    print(
        f"\nClass rush on {os.cpu_count()} cores, JupyterHub {v['jupyterhub']}, JupyterLab {v['jupyterlab']} "
        f"(`bench/rush.py`)\n"
    )
    print(
        "| hub | N | all ready (s) | login→ready p50 (s) | p95 (s) | failed | hub CPU (s) | PSS/server, MiB (own) "
        "| first `1+1` p50 (ms) | `1+1` after it p50 (ms) | /hub/health p99 (ms) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['hub']} | {r['n']} | {fmt(r['all_ready'])} | {fmt(r['p50'], 2)} | {fmt(r['p95'], 2)} | "
            f"{r['failed']}/{r['n']} | {fmt(r['hub_cpu'])} | {fmt(r['pss'], 0)} ({fmt(r['own_pss'], 0)}) | {fmt(r['first_rtt_p50'])} | "
            f"{fmt(r['rtt_p50'])} | {fmt(r['health_p99'], 0)} |"
        )
    for r in rows:
        for message, count in r["errors"].items():
            print(f"  {r['hub']} N={r['n']}: {count} × {message}")
        if "prewarm" in r:
            took, missing = r["prewarm"]
            print(
                f"  {r['hub']} N={r['n']}: before the rush, all servers up in {fmt(took)} s"
                + (f" ({missing} not up after {PREWARM_DEADLINE:.0f} s)" if missing else "")
            )
    if PRINT_PHASES:
        print(
            f"\nCPU seconds per server process (mean): {fmt(statistics.mean(SERVER_CPU), 2) if SERVER_CPU else '–'}"
        )
        for r in rows:
            print(
                f"{r['hub']} N={r['n']}: whole machine busy {fmt(r['machine_busy'])} CPU-s during the rush "
                f"(of which this simulated class {fmt(r['client_cpu'])}, the hub process {fmt(r['hub_cpu'])})"
            )
            if r.get("slow_health"):
                print(f"  /hub/health over 200 ms (sent at s, took ms): {r['slow_health']}")
            if r.get("cpu_by_kind"):
                print(
                    "  CPU-s by kind of process: "
                    + ", ".join(f"{k} {v:.1f}" for k, v in r["cpu_by_kind"].items())
                )
                print(
                    "  largest of other: "
                    + "; ".join(f"{name} {cpu:.1f}" for name, cpu in r["largest_others"])
                )
        print("\nWhen each step was done, seconds after the rush began (median / last student):\n")
        print("| hub | N | " + " | ".join(PHASES) + " |")
        print("|---|---|" + "---|" * len(PHASES))
        for r in rows:
            cells = [
                f"{fmt(r['phases'][p][0])} / {fmt(r['phases'][p][1])}" if p in r["phases"] else "–"
                for p in PHASES
            ]
            print(f"| {r['hub']} | {r['n']} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 10, 30, 60])
    parser.add_argument("--only", choices=["stock", "mlworkshop"])
    parser.add_argument("--phases", action="store_true", help="also print when each step was done")
    parser.add_argument(
        "--prewarm", action="store_true", help="start every server before the rush (class pre-warm)"
    )
    args = parser.parse_args()
    global PRINT_PHASES
    PRINT_PHASES = args.phases
    if os.geteuid() != 0:
        sys.exit("Run as root: mlworkshop creates a system account per student.")
    if not CHP.exists():
        sys.exit("configurable-http-proxy is missing: run `make install` first.")
    rows = []
    for n in args.n:
        for kind in ("stock", "mlworkshop"):
            if args.only and kind != args.only:
                continue
            print(f"{kind}: {n} students ...", flush=True)
            rows.append(run_one(kind, n, args.prewarm))
            print_table(rows[-1:])
    print_table(rows)


if __name__ == "__main__":
    main()
