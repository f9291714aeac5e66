"""User servers. One mixin holds what every backend shares (workspace, environment); the local
backend adds only how a process is started as the user's own account.

`LocalSpawner.launch()` is the one place a local server process is started, so a faster start
(e.g. forking a process that has already imported JupyterLab) can replace it alone.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import time
from pathlib import Path
from subprocess import DEVNULL, Popen

import psutil
from jupyterhub.spawner import LocalProcessSpawner
from jupyterhub.utils import maybe_future, random_port
from traitlets import Bool, Float, Integer, Unicode

from ..fastpath.client import ForkServerUnavailable, forkserver_for
from ..fastpath.privileges import Identity, drop_privileges
from ..fastpath.protocol import ForkRequest
from ..userlogs import open_user_log, prepare_user_log
from .accelerators import AcceleratorHooks
from .cgroup_hooks import CgroupHooks
from .usage_hooks import UsageHooks
from .workspace import Workspace, WorkspaceError, prepare_workspace, set_device_groups


class StartQueue:
    """Admission control: at most `limit` servers start at once, the rest wait their turn.

    Stock JupyterHub starts every request at once; on 2 cores 30 cold starts each get a sliver of
    CPU, pass http_timeout and are killed. Waiting in line is slower for nobody and fails nobody.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.running = 0
        self.waiting: list[asyncio.Future] = []

    def position(self, ticket: asyncio.Future) -> int:
        return self.waiting.index(ticket) + 1 if ticket in self.waiting else 0

    async def acquire(self) -> None:
        if self.running < self.limit and not self.waiting:
            self.running += 1
            return
        ticket = asyncio.get_running_loop().create_future()
        self.waiting.append(ticket)
        try:
            await ticket  # release() hands its slot over: running stays counted
        except BaseException:
            if ticket in self.waiting:
                self.waiting.remove(ticket)
            elif ticket.done() and not ticket.cancelled():
                self.release()  # we were handed a slot but are going away: pass it on
            raise

    def release(self) -> None:
        while self.waiting:
            ticket = self.waiting.pop(0)
            if not ticket.done():
                ticket.set_result(None)
                return
        self.running -= 1


def _is_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


_queues: dict[int, StartQueue] = {}


def start_queue(limit: int) -> StartQueue:
    """One queue per hub process (and per limit, for tests that build several configs)."""
    if limit not in _queues:
        _queues[limit] = StartQueue(limit)
    return _queues[limit]


class WorkspaceMixin(UsageHooks, AcceleratorHooks):
    """What every backend shares: the workspace on disk and the accelerator hooks."""

    site_root = Unicode(help="The site folder (users/, submissions/ live here).").tag(config=True)
    content_dir = Unicode(help="Folder with lessons/, datasets/, models/.").tag(config=True)
    user_prefix = Unicode("mlw-", help="Prefix of per-user system accounts.").tag(config=True)
    admin_group = Unicode("mlw-admins", help="System group of hub admins.").tag(config=True)
    isolate_users = Bool(
        True, help="Run each server as the user's own system account (needs a root hub)."
    ).tag(config=True)

    workspace: Workspace | None = None

    @property
    def runs_as_root(self) -> bool:
        return os.geteuid() == 0 and self.isolate_users

    async def prepare_user_workspace(self) -> Workspace:
        site = Path(self.site_root)
        account = self.user_prefix + self.user.name if self.runs_as_root else None
        try:
            self.workspace = await asyncio.to_thread(
                prepare_workspace, site / "users", site / "submissions", Path(self.content_dir),
                self.user.name, bool(self.user.admin), account, self.admin_group,
            )
        except (OSError, WorkspaceError) as exc:
            self.log.error("Workspace for %s could not be prepared: %s", self.user.name, exc)
            raise RuntimeError(
                f"Your workspace could not be prepared ({exc}). Ask an administrator to check "
                "the hub's log and free disk space."
            ) from None
        return self.workspace

    max_concurrent_starts = Integer(4, help="Servers starting at once; the rest wait in line.").tag(config=True)
    _queue_ticket_state: str = ""
    _step_times: dict[str, float] | None = None  # when each step of the current start ended

    # --- the life cycle every backend shares; backends implement start_backend/stop_backend ---
    async def start(self):
        queue = start_queue(self.max_concurrent_starts)
        self._queue_ticket_state = "waiting"
        self._step_times = {"asked": time.monotonic()}
        await queue.acquire()
        self._step_times["in line"] = time.monotonic()
        try:
            self._queue_ticket_state = "starting"
            granted = await self.grant_accelerators()  # refused here: nothing was started
            self._mark("devices granted")
            try:
                address = await self.start_backend(granted)
            except BaseException:
                await self.release_accelerators()
                raise
            await self.usage_started()
            self._mark("usage recorded")
            self._log_step_times()
            return address
        finally:
            self._queue_ticket_state = ""
            queue.release()

    def _mark(self, step: str) -> None:
        if self._step_times is not None:
            self._step_times[step] = time.monotonic()

    def _log_step_times(self) -> None:
        """One line per start saying where its time went: what an admin needs when a class
        says "it is slow" (and what bench/rush.py's numbers are made of)."""
        marks = list(self._step_times.items())
        steps = ", ".join(f"{name} {t - prev:.2f} s" for (_, prev), (name, t) in zip(marks, marks[1:]))
        self.log.info("Started %s's server in %.2f s: %s", self.user.name, marks[-1][1] - marks[0][1], steps)

    async def stop(self, now=False):
        try:
            await super().stop(now=now)  # through UsageHooks to the backend's own stop
        finally:
            await self.release_accelerators()
            await self.usage_stopped("stopped")

    async def start_backend(self, granted):
        raise NotImplementedError

    async def progress(self):
        """Events for the spawn page: the student's place in line while the class rushes in."""
        queue = start_queue(self.max_concurrent_starts)
        shown = None
        while self._queue_ticket_state == "waiting":
            waiting = len(queue.waiting)
            if waiting != shown:
                shown = waiting
                yield {"progress": 10, "message": f"Many students are starting at once: yours is in line "
                       f"({waiting} waiting, {queue.limit} starting at a time)"}
            await asyncio.sleep(0.5)
        yield {"progress": 50, "message": "Starting your JupyterLab"}


class LocalSpawner(WorkspaceMixin, CgroupHooks, LocalProcessSpawner):
    """A JupyterLab process per user, as that user's own account when the hub is root (in the
    account's cgroup: CgroupHooks)."""

    nice = Integer(5, help="Niceness of user servers (and so their kernels) above the hub's.").tag(config=True)
    preload = Bool(True, help="Fork servers from the fork server (JupyterLab preloaded).").tag(config=True)
    ready_poll_interval = Float(0.02, help="Seconds between checks that a starting server listens.").tag(config=True)

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
            drop_privileges(Identity(account.uid, account.gid, groups), cgroup_dirs=cgroup_dirs, nice=nice,
                            umask=0o002 if is_admin else 0o022, cwd=account.home)  # admins': group-editable

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

    async def delete_forever(self):
        """The user is deleted (admin page, API, `mlworkshop user remove`; the hub has stopped
        the server by now): end every other process of the account and delete it, its uid never
        handed out again (hub/removal.py), so nothing of the removed user lives on. Files stay."""
        await maybe_future(super().delete_forever())
        if self.name or not self.runs_as_root:
            return  # a named server going away is not its user going away
        from .removal import remove_system_account

        problems = await asyncio.to_thread(remove_system_account, self.user_prefix + self.user.name,
                                           Path(self.site_root) / "state")
        for problem in problems:
            self.log.error("Removing %s: %s", self.user.name, problem)

    def get_env(self):
        env = super().get_env()
        env.update(self.accelerator_env())
        return env

    async def poll(self):
        """Like LocalProcessSpawner.poll, but a server that died while another hub process was
        its parent (a zombie nobody reaps) counts as dead, not running."""
        status = await super().poll()
        if status is None and self.proc is None and self.pid and _is_zombie(self.pid):
            self.clear_state()
            return 0
        return status

    async def start_backend(self, granted):
        workspace = await self.prepare_user_workspace()
        self._mark("workspace")
        if workspace.account is None:
            self.log.warning(
                "The hub is not running as root: %s's server runs as the hub's own user and users "
                "are NOT isolated from each other. Run the hub as root for a real class.",
                self.user.name,
            )
        else:
            device_groups = {g for groups in self._acc.cfg.accelerators.device_groups.values() for g in groups}
            await asyncio.to_thread(set_device_groups, workspace.account.name, device_groups, set(granted.groups))
        self.notebook_dir = str(workspace.home)
        if self.port == 0:
            self.port = random_port()
        self._mark("device groups")
        address = await self.launch()
        self._mark("forked" if self.proc is None else "started")
        await self.wait_until_listening()
        self._mark("listening")
        return address

    async def launch(self):
        """Start the server process; the only place a local server is created.

        Forked from the fork server (JupyterLab already imported) when it runs, else a fresh
        process. Either way the server runs as the user's account with the user's environment."""
        cmd = [*self.cmd, *self.get_args()]
        env = self.get_env()
        await self.prepare_cgroup()
        log = self._user_log()
        if self.preload:
            try:
                self.pid = await forkserver_for(Path(self.site_root) / "state").fork(
                    self._fork_request(cmd, env, log))
                self.proc = None
                self.log.info("Forked a server for %s (pid %s)", self.user.name, self.pid)
                return (self.ip or "127.0.0.1", self.port)
            except ForkServerUnavailable as exc:
                self.log.warning("Fork server unavailable (%s): starting %s's server cold", exc, self.user.name)
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
            return Popen(cmd, **{**kwargs, "stdin": DEVNULL, "stdout": fd, "stderr": fd, "close_fds": True})
        finally:
            os.close(fd)

    def _log_failure(self, exc: OSError) -> RuntimeError:
        self.log.error("The log file of %s's server cannot be used: %s", self.user.name, exc)
        return RuntimeError("Your server's log file could not be prepared. Ask an administrator to check the hub's log.")

    def _fork_request(self, cmd: list[str], env: dict[str, str], log: Path | None = None) -> ForkRequest:
        workspace = self.workspace
        account = workspace.account if workspace else None
        return ForkRequest(
            cwd=str(workspace.home) if workspace else os.getcwd(), env=env,
            argv=cmd[2:] if cmd[1:2] == ["-m"] else cmd,
            umask=0o002 if self.user.admin else 0o022, nice=self.nice, cgroups=list(self.cgroup_dirs),
            uid=account.uid if account else None, gid=account.gid if account else None,
            groups=os.getgrouplist(account.name, account.gid) if account else [],
            log=str(log) if log else None,
        )

    async def wait_until_listening(self) -> None:
        """Return as soon as the server accepts connections, so the hub's first readiness check
        succeeds (stock JupyterHub polls with back-off up to 5 s after the server is already up)."""
        host = self.ip or "127.0.0.1"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while loop.time() < deadline:
            if await self.poll() is not None:
                raise RuntimeError(
                    f"{self.user.name}'s server exited while starting. An administrator sees its output with `mlworkshop logs {self.user.name}`."
                )
            try:
                _, writer = await asyncio.open_connection(host, self.port)
            except OSError:
                await asyncio.sleep(self.ready_poll_interval)
                continue
            writer.close()
            return
        raise TimeoutError(f"{self.user.name}'s server did not start listening within {self.start_timeout} s")

