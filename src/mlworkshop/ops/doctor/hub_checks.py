"""The running hub and what it runs: its health, its ports, the fork server, the usage service,
servers the hub thinks run that do not, and processes of students that no server owns.

Repairs go through the hub where the hub owns the thing (the fork server is its child, managed
services are restarted by it, a server is stopped by it); orphan processes are signalled
directly, after asking the hub again who runs a server, and only if they are students' (their
account starts with spawner.local.user_prefix) and were running before the hub was asked.
"""

from __future__ import annotations

import os
import pwd
import socket
import time

import httpx
import psutil

from .findings import Context, Finding, ok

CLOCK_SLACK = 0.5  # seconds: a process's start time is counted in clock ticks


def _hub_url(cfg) -> str:
    """Where students reach the hub: this machine's proxy, or MLWORKSHOP_HUB_URL where the proxy is
    somewhere else (the Zero to JupyterHub chart's proxy-public Service: `mlworkshop k8s values`)."""
    if os.environ.get("MLWORKSHOP_HUB_URL"):
        return os.environ["MLWORKSHOP_HUB_URL"].rstrip("/") + "/"
    host = cfg.hub.ip if cfg.hub.ip not in ("", "0.0.0.0", "::") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    scheme = "https" if cfg.hub.https.enabled else "http"
    return f"{scheme}://{host}:{cfg.hub.port}{cfg.hub.base_url}"


def check_hub(ctx: Context) -> list[Finding]:
    if ctx.cfg is None:
        return []
    url = _hub_url(ctx.cfg) + "hub/health"
    try:  # only whether it answers: the certificate is checked by its own finding
        status = httpx.get(url, timeout=10, verify=False).status_code
    except httpx.HTTPError as exc:
        status = f"no answer ({type(exc).__name__})"
    if status == 200 and ctx.hub is not None:
        return [ok("hub", f"the hub answers at {url}")]
    return [
        Finding(
            "hub",
            "error",
            f"the hub does not answer at {url} ({status}"
            + ("" if ctx.hub is not None else "; its API port does not answer either")
            + "): nobody can log in.",
            "start it: `systemctl start` the unit `mlworkshop service status` names, or `mlworkshop up`; "
            "see why it stopped with `mlworkshop logs hub`",
        )
    ]


def _port_busy(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host or "0.0.0.0", port))
        except OSError:
            return True
    return False


def check_ports(ctx: Context) -> list[Finding]:
    cfg = ctx.cfg
    if cfg is None:
        return []
    ports = [
        ("hub.port", cfg.hub.ip, cfg.hub.port),
        ("hub.internal_port", "127.0.0.1", cfg.hub.api_port),
        ("hub.proxy_api_port", "127.0.0.1", cfg.hub.proxy_port),
    ]
    if cfg.hub.https.enabled and cfg.hub.https.redirect_port:
        ports.append(("hub.https.redirect_port", "0.0.0.0", cfg.hub.https.redirect_port))
    if ctx.hub is not None:
        return [ok("ports", "the hub's ports are held by the running hub")]
    from ...hub.proxy_process import kept_proxy_ports

    kept = kept_proxy_ports(ctx.site.state)  # the proxy a stopped hub leaves for the next one
    busy = [(k, port) for k, host, port in ports if port not in kept and _port_busy(host, port)]
    if not busy:
        return [
            ok(
                "ports",
                "the hub is stopped; its ports are free"
                + (" or held by the proxy it keeps for its next start" if kept else ""),
            )
        ]
    return [
        Finding(
            "ports",
            "error",
            f"the hub is not running, yet {', '.join(f'port {p} ({k})' for k, p in busy)} "
            "is in use by something else: the hub cannot start.",
            f"see what holds it: `ss -ltnp 'sport = :{busy[0][1]}'`; stop it, or pick another port: "
            f"`mlworkshop config set {busy[0][0]} PORT`",
        )
    ]


def check_fork_server(ctx: Context) -> list[Finding]:
    cfg = ctx.cfg
    if (
        cfg is None
        or ctx.hub is None
        or cfg.spawner.backend != "local"
        or not cfg.spawner.local.preload
    ):
        return []
    state = ctx.hub.fork_server()
    if state.get("running"):
        return [ok("fork-server", f"the fork server runs (pid {state.get('pid')})")]
    return [
        Finding(
            "fork-server",
            "error",
            "the fork server is not running: every server and kernel starts cold (seconds of CPU "
            "each), so a whole class starting at once runs into start timeouts.",
            "mlworkshop doctor --fix (the hub starts it again), or restart the hub",
            lambda: _restart_fork_server(ctx),
        )
    ]


def _restart_fork_server(ctx: Context) -> str:
    state = ctx.hub.fork_server(restart=True)
    return f"the hub started the fork server again (pid {state.get('pid')})"


def _usage_answers(cfg, site) -> bool:
    port = cfg.usage.service_port or site.usage_service_port()
    url = f"http://127.0.0.1:{port}{cfg.hub.base_url}services/usage/api/health"
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def check_usage_service(ctx: Context) -> list[Finding]:
    cfg = ctx.cfg
    if cfg is None or ctx.hub is None or not cfg.usage.enabled:
        return []
    state = ctx.hub.service("usage")
    if not state.get("running"):
        return [
            Finding(
                "usage-service",
                "error",
                "the usage service is not running: usage is not recorded and quotas are not enforced "
                "while servers run.",
                "mlworkshop doctor --fix (the hub starts it again); its log: `mlworkshop logs usage`",
                lambda: _restart_usage(ctx),
            )
        ]
    if not _usage_answers(cfg, ctx.site):
        return [
            Finding(
                "usage-service",
                "warn",
                f"the usage service runs (pid {state.get('pid')}) but does not answer yet: starting, or hung.",
                "run `mlworkshop doctor` again in a minute; if it still does not answer, see `mlworkshop logs usage`",
            )
        ]
    return [ok("usage-service", f"the usage service runs and answers (pid {state.get('pid')})")]


def _restart_usage(ctx: Context) -> str:
    state = ctx.hub.service("usage", restart=True)
    return f"the hub started the usage service again (pid {state.get('pid')})"


def _alive_as(pid: int, account: str | None) -> bool:
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if account is None:
            return True
        return proc.uids().real == pwd.getpwnam(account).pw_uid
    except (psutil.NoSuchProcess, KeyError):
        return False
    except psutil.AccessDenied:
        return True


def _users(ctx: Context) -> list[dict]:
    if "users" not in ctx.cache:
        ctx.cache["users"] = ctx.hub.users()
        ctx.cache["users_at"] = time.time()
    return ctx.cache["users"]


def check_stale_servers(ctx: Context) -> list[Finding]:
    """Local backend: the hub's record of each running server holds its pid (server state)."""
    cfg = ctx.cfg
    if cfg is None or ctx.hub is None or cfg.spawner.backend != "local":
        return []
    import os

    as_root = os.geteuid() == 0
    found = []
    for user in _users(ctx):
        for name, server in (user.get("servers") or {}).items():
            pid = (server.get("state") or {}).get("pid")
            if not server.get("ready") or not pid:
                continue
            account = cfg.spawner.local.user_prefix + user["name"] if as_root else None
            if _alive_as(pid, account):
                continue
            label = f"{user['name']}'s server" + (f" {name!r}" if name else "")
            found.append(
                Finding(
                    "stale-server",
                    "error",
                    f"the hub thinks {label} runs (pid {pid}), but no such process runs: the student "
                    "gets an error page instead of their server, and any devices stay allocated.",
                    f"mlworkshop doctor --fix (the hub stops {label} and frees its devices)",
                    lambda u=user["name"], n=name, lb=label: _stop(ctx, u, n, lb),
                )
            )
    return found or [ok("stale-server", "every server the hub lists runs")]


def _stop(ctx: Context, user: str, server: str, label: str) -> str:
    ctx.hub.stop_server(user, server)
    return f"asked the hub to stop {label}"


def _student_processes(prefix: str, before: float) -> dict[str, list[psutil.Process]]:
    students = {e.pw_uid: e.pw_name for e in pwd.getpwall() if e.pw_name.startswith(prefix)}
    found: dict[str, list[psutil.Process]] = {}
    for proc in psutil.process_iter(["uids", "create_time"]):
        try:
            uid = proc.info["uids"].real
            if uid in students and proc.info["create_time"] < before:
                found.setdefault(students[uid], []).append(proc)
        except (psutil.NoSuchProcess, TypeError, AttributeError):
            continue
    return found


def _owners(users: list[dict], prefix: str) -> set[str]:
    """Accounts of users with a server running or starting."""
    return {prefix + u["name"] for u in users if u.get("servers") or u.get("pending")}


def check_orphans(ctx: Context) -> list[Finding]:
    import os

    cfg = ctx.cfg
    if cfg is None or ctx.hub is None or cfg.spawner.backend != "local" or os.geteuid() != 0:
        return []  # a hub not run as root runs every server as itself: no student accounts
    prefix = cfg.spawner.local.user_prefix
    # the hub first, then the processes: one that existed before the hub said its user runs no
    # server (a start or a stop in progress counts as running) belongs to no server
    users, asked_at = ctx.hub.users(), time.time()
    procs = _student_processes(prefix, asked_at - CLOCK_SLACK)
    owners = _owners(users, prefix)
    orphans = {account: ps for account, ps in procs.items() if account not in owners}
    if not orphans:
        return [ok("orphans", "every student process belongs to a running server")]
    shown = ", ".join(f"{a} ({len(ps)})" for a, ps in sorted(orphans.items()))
    return [
        Finding(
            "orphans",
            "warn",
            f"processes of students without a running server: {shown}. They hold CPU, memory or "
            "devices that nobody's usage records.",
            "mlworkshop doctor --fix (ends them: SIGTERM, then SIGKILL)",
            lambda: _end_orphans(ctx, orphans),
        )
    ]


def _end_orphans(ctx: Context, orphans: dict[str, list[psutil.Process]]) -> str:
    """Ask the hub again first: a server that started since the look owns its account's processes."""
    owners = _owners(ctx.hub.users(), ctx.cfg.spawner.local.user_prefix)
    victims = [p for account, ps in orphans.items() if account not in owners for p in ps]
    for proc in victims:
        try:
            proc.terminate()  # psutil checks it is the same process (pid and start time)
        except psutil.NoSuchProcess:
            pass
    _gone, alive = psutil.wait_procs(victims, timeout=5)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    accounts = sorted({a for a in orphans if a not in owners})
    return f"ended {len(victims)} orphan process(es) of {', '.join(accounts) or 'nobody'}"
