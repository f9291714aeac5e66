"""User servers. One mixin holds what every backend shares (workspace, environment); the local
backend adds only how a process is started as the user's own account.

`LocalSpawner.launch()` is the one place a local server process is started, so a faster start
(e.g. forking a process that has already imported JupyterLab) can replace it alone.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from pathlib import Path
from subprocess import Popen

from jupyterhub.spawner import LocalProcessSpawner
from jupyterhub.utils import random_port
from traitlets import Bool, Unicode
from traitlets.config import LoggingConfigurable

from .workspace import Workspace, WorkspaceError, prepare_workspace


class WorkspaceMixin(LoggingConfigurable):
    """Workspace hooks shared by every backend."""

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


class LocalSpawner(WorkspaceMixin, LocalProcessSpawner):
    """A JupyterLab process per user, as that user's own account when the hub is root."""

    def make_preexec_fn(self, name):
        workspace = self.workspace
        is_admin = bool(self.user.admin)

        if workspace is None or workspace.account is None:
            home = str(workspace.home) if workspace else None

            def preexec_same_user():
                if home:
                    os.chdir(home)

            return preexec_same_user

        account = workspace.account
        groups = os.getgrouplist(account.name, account.gid)

        def preexec_drop_privileges():
            os.setgid(account.gid)
            os.setgroups(groups)
            os.setuid(account.uid)
            os.umask(0o002 if is_admin else 0o022)  # admins' shared content stays group-editable
            os.chdir(account.home)

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

    async def start(self):
        workspace = await self.prepare_user_workspace()
        if workspace.account is None:
            self.log.warning(
                "The hub is not running as root: %s's server runs as the hub's own user and users "
                "are NOT isolated from each other. Run the hub as root for a real class.",
                self.user.name,
            )
        self.notebook_dir = str(workspace.home)
        if self.port == 0:
            self.port = random_port()
        return await self.launch()

    async def launch(self):
        """Start the server process; the only place a local server is created."""
        cmd = [*self.cmd, *self.get_args()]
        env = self.get_env()
        self.log.info("Spawning %s for %s", " ".join(shlex.quote(s) for s in cmd), self.user.name)
        kwargs = dict(preexec_fn=self.make_preexec_fn(self.user.name), start_new_session=True)
        kwargs.update(self.popen_kwargs)
        kwargs["env"] = env
        self.proc = Popen(cmd, **kwargs)
        self.pid = self.proc.pid
        return (self.ip or "127.0.0.1", self.port)
