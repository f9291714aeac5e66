"""The local backend: a JupyterLab process per user, as that user's own account when the hub is
root. The lifecycle every backend shares (queue, devices, workspace, cgroup, usage) is
hub/lifecycle.py's; this class adds only how a process is started, stopped and polled.

`LocalSpawner.launch()` is the one place a local server process is started, so a faster start
(e.g. forking a process that has already imported JupyterLab) can replace it alone.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from pathlib import Path
from subprocess import DEVNULL, Popen

import psutil
from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Bool, Float, Integer

from ..fastpath.client import ForkServerUnavailable, forkserver_for
from ..fastpath.privileges import Identity, drop_privileges
from ..fastpath.protocol import ForkRequest
from ..i18n import gettext
from ..userlogs import open_user_log, prepare_user_log
from . import server_port
from .cgroup_hooks import cgroup_limits
from .i18n import lab_language_env
from .lifecycle import StartQueue, WorkshopSpawner, start_queue
from .usage_hooks import local_reading
from .workspace import set_device_groups

__all__ = ["LocalSpawner", "StartQueue", "start_queue"]  # the queue lives in hub/lifecycle.py now

PORT_ATTEMPTS = 3  # ports tried for one start when something else holds them (hub/server_port.py)


def _is_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class LocalSpawner(WorkshopSpawner, LocalProcessSpawner):
    """A JupyterLab process per user, as that user's own account when the hub is root, in the
    account's cgroup (the lifecycle makes it from `cgroup_limits()`)."""

    backend_name = "local"

    nice = Integer(5, help="Niceness of user servers (and so their kernels) above the hub's.").tag(
        config=True
    )
    max_processes = Integer(
        2048,
        help="pids limit of each user's cgroup: processes and threads of their server and kernels.",
    ).tag(config=True)
    preload = Bool(True, help="Fork servers from the fork server (JupyterLab preloaded).").tag(
        config=True
    )
    ready_poll_interval = Float(
        0.02, help="Seconds between checks that a starting server listens."
    ).tag(config=True)

    def make_preexec_fn(self, name):
        workspace = self.workspace
        is_admin = bool(self.user.admin)

        nice = self.nice
        if workspace is None or workspace.account is None:
            home = str(workspace.home) if workspace else None

            def preexec_same_user():
                os.nice(nice)
                if home:
                    os.chdir(home)

            return preexec_same_user

        account = workspace.account
        groups = os.getgrouplist(account.name, account.gid)
        cgroup_dirs = list(self.cgroup_dirs)

        def preexec_drop_privileges():  # in the order every fast-path process drops in too
            drop_privileges(
                Identity(account.uid, account.gid, groups),
                cgroup_dirs=cgroup_dirs,
                nice=nice,
                umask=0o002 if is_admin else 0o022,
                cwd=account.home,
            )  # admins': group-editable

        return preexec_drop_privileges

    def user_env(self, env):
        workspace = self.workspace
        env["USER"] = workspace.account.name if workspace and workspace.account else self.user.name
        if workspace:
            env["HOME"] = str(workspace.home)
        env["SHELL"] = "/bin/bash"
        return env

    async def move_certs(self, paths):
        return paths  # internal SSL is not used by mlworkshop's local backend

    def get_env(self):
        env = super().get_env()
        env.update(self.accelerator_env())
        if env.get("JUPYTER_CONFIG_PATH"):  # beside our server config (hub/configure.py):
            # the default language of this server's JupyterLab (a student's own choice wins)
            env.update(lab_language_env(self.language, env["JUPYTER_CONFIG_PATH"]))
        return env

    def cgroup_limits(self):
        """The account's cgroup: the spawn profile's CPUs and memory, and max_processes."""
        return cgroup_limits(
            self.accelerator_grant, self.hub_accelerators.cfg.profiles, self.max_processes
        )

    def read_usage(self, dead: bool = False):
        """The server's processes now (the account's cgroup counter, where the hub made it)."""
        from ..usage.collector import cgroup_cpu_seconds

        account = self.account_name()
        base = None if self._other_servers() else self._usage_cpu_base
        return local_reading(
            self.user.spawners,
            self.name or "",
            getattr(self, "pid", 0),
            dead,
            lambda: cgroup_cpu_seconds(account),
            base,
        )

    async def poll_backend(self):
        """Like LocalProcessSpawner.poll, but a server that died while another hub process was
        its parent (a zombie nobody reaps) counts as dead, not running."""
        status = await self.engine_poll()
        if status is None and self.proc is None and self.pid and _is_zombie(self.pid):
            self.clear_state()
            return 0
        return status

    async def start_backend(self, granted):
        workspace = self.workspace
        if workspace.account is None:
            self.log.warning(
                "The hub is not running as root: %s's server runs as the hub's own user and users "
                "are NOT isolated from each other. Run the hub as root for a real class.",
                self.user.name,
            )
        else:
            device_groups = {
                g for groups in self.hub_accelerators.cfg.device_groups.values() for g in groups
            }
            await asyncio.to_thread(
                set_device_groups, workspace.account.name, device_groups, set(granted.groups)
            )
        self.notebook_dir = str(workspace.home)
        self._mark("device groups")
        for attempt in range(1, PORT_ATTEMPTS + 1):
            if self.port == 0 or attempt > 1:
                self.port = server_port.pick()
            port = self.port
            try:
                address = await self.launch()
                self._mark("forked" if self.proc is None else "started")
                await self.wait_until_listening()
            except server_port.PortTaken as taken:
                await self._port_taken(taken, attempt)
                continue
            finally:
                server_port.release(port)
            self._mark("listening")
            return address
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _port_taken(self, taken: server_port.PortTaken, attempt: int) -> None:
        """The server's port was someone else's by the time it started (hub/server_port.py): end
        the server (it may still bind the port once the other goes) and try another port."""
        self.log.warning(
            "Port %s was taken by uid %s before %s's server could listen there (attempt %s of %s)",
            taken.port,
            taken.owner,
            self.user.name,
            attempt,
            PORT_ATTEMPTS,
        )
        token = self.api_token  # the next try's server gets the same one
        await self.engine_stop(now=True)  # finds it dead: JupyterHub clears the state then
        self.api_token, self.pid, self.proc = token, 0, None
        if attempt == PORT_ATTEMPTS:
            raise RuntimeError(
                gettext(
                    "Your server could not get a network port of its own ({n} tries). Try again; "
                    "if it keeps failing, ask an administrator to look at the hub's log."
                ).format(n=PORT_ATTEMPTS)
            )

    async def launch(self):
        """Start the server process; the only place a local server is created.

        Forked from the fork server (JupyterLab already imported) when it runs, else a fresh
        process. Either way the server runs as the user's account with the user's environment."""
        cmd = [*self.cmd, *self.get_args()]
        env = self.get_env()
        log = self._user_log()
        if self.preload:
            try:
                self.pid = await forkserver_for(Path(self.site_root) / "state").fork(
                    self._fork_request(cmd, env, log)
                )
                self.proc = None
                self.log.info("Forked a server for %s (pid %s)", self.user.name, self.pid)
                return (self.ip or "127.0.0.1", self.port)
            except ForkServerUnavailable as exc:
                self.log.warning(
                    "Fork server unavailable (%s): starting %s's server cold", exc, self.user.name
                )
        self.log.info("Spawning %s for %s", " ".join(shlex.quote(s) for s in cmd), self.user.name)
        kwargs = dict(preexec_fn=self.make_preexec_fn(self.user.name), start_new_session=True)
        kwargs.update(self.popen_kwargs)
        kwargs["env"] = env
        self.proc = self._popen_logged(cmd, kwargs, log)
        self.pid = self.proc.pid
        return (self.ip or "127.0.0.1", self.port)

    def _user_log(self) -> Path:
        """The user's own log file (mlworkshop.userlogs), rotated if large: their server's (and
        kernels') stdout and stderr. Never the hub's own: a student could forge or erase that."""
        try:
            return prepare_user_log(Path(self.site_root) / "logs", self.user.name)
        except OSError as exc:
            raise self._log_failure(exc) from None

    def _popen_logged(self, cmd: list[str], kwargs: dict, log: Path) -> Popen:
        """A cold server: stdin /dev/null, stdout and stderr the user's log, and no other
        descriptor of the hub's (close_fds), whatever popen_kwargs say."""
        try:
            fd = open_user_log(log)
        except OSError as exc:
            raise self._log_failure(exc) from None
        try:
            return Popen(
                cmd, **{**kwargs, "stdin": DEVNULL, "stdout": fd, "stderr": fd, "close_fds": True}
            )
        finally:
            os.close(fd)

    def _log_failure(self, exc: OSError) -> RuntimeError:
        self.log.error("The log file of %s's server cannot be used: %s", self.user.name, exc)
        return RuntimeError(
            "Your server's log file could not be prepared. Ask an administrator to check the hub's log."
        )

    def _fork_request(
        self, cmd: list[str], env: dict[str, str], log: Path | None = None
    ) -> ForkRequest:
        workspace = self.workspace
        account = workspace.account if workspace else None
        return ForkRequest(
            cwd=str(workspace.home) if workspace else os.getcwd(),
            env=env,
            argv=cmd[2:] if cmd[1:2] == ["-m"] else cmd,
            umask=0o002 if self.user.admin else 0o022,
            nice=self.nice,
            cgroups=list(self.cgroup_dirs),
            uid=account.uid if account else None,
            gid=account.gid if account else None,
            groups=os.getgrouplist(account.name, account.gid) if account else [],
            log=str(log) if log else None,
        )

    def _server_uid(self) -> int:
        """The account the server runs as: the student's on a root hub, else the hub's own."""
        workspace = self.workspace
        if workspace is not None and workspace.account is not None:
            return workspace.account.uid
        return os.geteuid()

    async def wait_until_listening(self) -> None:
        """Return as soon as the server accepts connections, so the hub's first readiness check
        succeeds (stock JupyterHub polls with back-off up to 5 s after the server is already up).
        What accepts must be the server's own account: a listener of anyone else's is
        PortTaken (hub/server_port.py), even once the server has given up on the port and exited."""
        host = self.ip or "127.0.0.1"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while loop.time() < deadline:
            try:
                _, writer = await asyncio.open_connection(host, self.port)
            except OSError:
                if await self.poll() is not None:
                    raise RuntimeError(
                        f"{self.user.name}'s server exited while starting. An administrator sees its output with `mlworkshop logs {self.user.name}`."
                    ) from None
                await asyncio.sleep(self.ready_poll_interval)
                continue
            try:
                owner = server_port.listener_uid(writer.get_extra_info("socket"))
            finally:
                writer.close()
            if owner == self._server_uid():
                return
            if owner is not None:
                raise server_port.PortTaken(self.port, owner)
            await asyncio.sleep(self.ready_poll_interval)  # gone before the kernel was asked
        raise TimeoutError(
            f"{self.user.name}'s server did not start listening within {self.start_timeout} s"
        )
