"""The proxy outlives the hub: restarting the hub does not cut students off.

JupyterHub's ConfigurableHTTPProxy stops the proxy when the hub stops and kills any proxy it
finds from before when it starts. Students' servers already survive a hub restart
(`cleanup_servers` is off), but with the proxy gone every student's connections drop (kernel
websockets, a save in flight) and nothing answers, not /hub/ and not their own servers, until
the new hub has started the proxy again and re-added every route, which it does only after its
managed services answer: measured 6.2 s with 10 servers (bench/hub_restart.py).

KeptProxy leaves the proxy running when the hub stops, and the next hub adopts it if it was
started the same way: the same command, addresses, hub URL, token and TLS files, summed up in a
fingerprint written beside the pid file. Otherwise (a config change, a renewed certificate, a
proxy that died) it is stopped and a new one started, as before. `mlworkshop down` stops it
(stop_kept_proxy below).

What is adopted must be provably ours, since the hub then hands it routes and its token: the pid
file and the fingerprint live in the site's state/ (root's alone); the process must be running
and listening on the proxy's API port, and its API must accept our token, which a process that
merely reused the pid cannot do. The proxy writes to <site>/logs/proxy.log itself (configure.py
`logged_to`): had it kept the hub's stdout, it would hold the hub's log pipe open after the hub
exits.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import urlparse

import psutil
from jupyterhub.proxy import ConfigurableHTTPProxy
from tornado.ioloop import PeriodicCallback
from traitlets import Unicode

from .. import cgroups
from .proxy_process import (
    FINGERPRINT,
    PROXY_MARK,
    has_ended,
    listening_ports,
    running_proxy,
    stop_pid_file,
)
from .service_accounts import PROXY_ACCOUNT

# under mlworkshop/, beside the students' groups, named as no student account can be (those begin
# with spawner.local.user_prefix, which begins with a letter): a student's group is killed and
# removed when her server stops
PROXY_CGROUP = PROXY_ACCOUNT
PROXY_CPU_WEIGHT = 1000  # ten students' share: every request of every student passes through it


class AdoptedProcess:
    """A proxy this hub did not start, behind the part of Popen's interface JupyterHub uses."""

    def __init__(self, process: psutil.Process):
        self._process = process
        self.pid = process.pid

    def poll(self) -> int | None:
        # gone: not our child, so its exit status is not ours to read
        return 1 if has_ended(self._process) else None

    def terminate(self) -> None:
        try:
            self._process.terminate()
        except psutil.NoSuchProcess:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


class KeptProxy(ConfigurableHTTPProxy):
    """configurable-http-proxy, kept across hub restarts (module docstring)."""

    fingerprint_file = Unicode(
        "",
        config=True,
        help="""Where the fingerprint of the running proxy's start is kept (beside pid_file when
        empty). A proxy is adopted only if the fingerprint of the start this hub would make is
        the same. Example: /srv/mlworkshop/state/proxy.fingerprint""",
    )

    def _fingerprint_path(self) -> Path:
        if self.fingerprint_file:
            return Path(self.fingerprint_file)
        return Path(self.pid_file).resolve().parent / FINGERPRINT

    def fingerprint(self) -> str:
        """Everything the proxy was started with, summed up (the token and TLS files by their
        content: a renewed certificate means a new proxy)."""

        def content(path: str) -> str:
            if not path:
                return ""
            try:
                return hashlib.sha256(Path(path).read_bytes()).hexdigest()
            except OSError:
                return "unreadable"

        started_with = {
            "command": list(self.command),
            "public_url": self.public_url,
            "api_url": self.api_url,
            "hub": self.hub.url,
            "log_level": self.log_level,
            "host_routing": bool(self.app.subdomain_host),
            "internal_ssl": bool(self.app.internal_ssl),
            "token": hashlib.sha256(self.auth_token.encode()).hexdigest(),
            "ssl_key": content(self.ssl_key),
            "ssl_cert": content(self.ssl_cert),
        }
        return hashlib.sha256(json.dumps(started_with, sort_keys=True).encode()).hexdigest()

    async def _adopt(self) -> bool:
        """Take over the proxy an earlier hub left, if it is provably ours and started the way
        this hub would start it."""
        process = running_proxy(Path(self.pid_file))
        if process is None:
            return False
        try:
            recorded = self._fingerprint_path().read_text().strip()
        except OSError:
            recorded = ""
        if recorded != self.fingerprint():
            self.log.info("The running proxy was started differently: starting a new one")
            return False
        if urlparse(self.api_url).port not in listening_ports(process):
            return False
        try:
            await self.get_all_routes()  # only a proxy that holds our token answers this
        except Exception as exc:  # noqa: BLE001 - any failure means: not ours to adopt
            self.log.warning("The running proxy (pid %s) did not answer: %s", process.pid, exc)
            return False
        self.proxy_process = AdoptedProcess(process)
        self.log.info(
            "Kept the proxy that was running (pid %s): students' connections were not cut",
            process.pid,
        )
        return True

    async def start(self):
        if await self._adopt():
            pc = PeriodicCallback(self.check_running, 1e3 * self.check_running_interval)
            self._check_running_callback = pc
            pc.start()
            return
        self._stop_previous()
        await super().start()
        self._own_cgroup(self.proxy_process.pid)
        path = self._fingerprint_path()
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(self.fingerprint() + "\n")

    def _stop_previous(self) -> None:
        """Stop the proxy an earlier hub left that is not adopted, and remove its pid file, before
        JupyterHub's start looks at that file. JupyterHub's own check signals whatever pid the
        file names (three times, a second apart): once our proxy has died, that pid can be any
        process. And it takes a proxy that exited but is not yet reaped (a zombie: its parent,
        the old hub, is gone, and PID 1 reaps when it gets to it) for one still running, and
        refuses to start ("Failed to stop proxy")."""
        stop_pid_file(Path(self.pid_file), PROXY_MARK, timeout=10)
        Path(self.pid_file).unlink(missing_ok=True)

    def _own_cgroup(self, pid: int) -> None:
        """Out of the hub's cgroup, so that stopping the hub's systemd unit (which stops what is
        in its group) leaves the proxy running, as Ctrl-C does; with a larger CPU share than a
        student's group, since every request passes through it. Root only."""
        hierarchy = cgroups.detect() if os.geteuid() == 0 else None
        if hierarchy is None:
            return
        try:
            limits = cgroups.Limits(cpu_weight=PROXY_CPU_WEIGHT)
            cgroups.join(cgroups.ensure(hierarchy, PROXY_CGROUP, limits), pid)
        except (cgroups.CgroupError, OSError) as exc:
            self.log.warning(
                "The proxy stays in the hub's cgroup (%s): stopping the hub's service stops it", exc
            )

    def stop(self):
        """At the hub's exit: leave the proxy running for the next hub (module docstring)."""
        if self._check_running_callback is not None:
            self._check_running_callback.stop()
        self.log.info(
            "The proxy (pid %s) keeps running: students' servers stay reachable until the hub is "
            "back. `mlworkshop down` stops it.",
            self.proxy_process.pid,
        )
