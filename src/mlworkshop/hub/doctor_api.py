"""Two endpoints of the hub's API for `mlworkshop doctor` and its watch service, for what only
the hub process can see or do:

- /hub/api/mlworkshop/fork-server: GET whether the fork server runs; POST starts it again if it
  does not (it is the hub's child: fastpath.client, started by jupyterhub_config.py).
- /hub/api/mlworkshop/services/NAME: GET whether a managed service's process runs; POST has
  the hub look now, rather than at its next poll (30 s), and so start a dead one again -- the
  hub's own poll callback does the restart, so it never runs twice.

Both need admin:servers (the CLI's token and the doctor's service have it; students do not).
"""

from __future__ import annotations

import asyncio

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope
from tornado import web

from ..fastpath.client import forkserver_for


class ForkServerHandler(APIHandler):
    def initialize(self, state_dir: str, kernel_socket: str | None, student_prefix: str):
        self.state_dir = state_dir
        self.kernel_socket = kernel_socket
        self.student_prefix = student_prefix

    def _state(self) -> dict:
        server = forkserver_for(self.state_dir)
        running = server.running
        return {"running": running, "pid": server.proc.pid if running else None}

    @needs_scope("admin:servers")
    def get(self):
        self.write(self._state())

    @needs_scope("admin:servers")
    def post(self):
        from pathlib import Path

        server = forkserver_for(self.state_dir)
        if not server.running:
            self.log.warning("The fork server is not running: starting it again (doctor)")
            server.start(
                kernel_socket=Path(self.kernel_socket) if self.kernel_socket else None,
                student_prefix=self.student_prefix,
            )
        self.write(self._state())


class ServiceHandler(APIHandler):
    def _service(self, name: str):
        service = self.services.get(name)
        if service is None or not service.managed:
            raise web.HTTPError(404, f"No managed service named {name!r}.")
        return service

    @staticmethod
    def _state(service) -> dict:
        proc = getattr(service.spawner, "proc", None) if service.spawner else None
        running = proc is not None and proc.poll() is None
        return {"running": running, "pid": proc.pid if running else None}

    @needs_scope("admin:servers")
    def get(self, name: str):
        self.write(self._state(self._service(name)))

    @needs_scope("admin:servers")
    async def post(self, name: str):
        service = self._service(name)
        if not self._state(service)["running"] and service.spawner is not None:
            self.log.warning("Service %s is not running: the hub looks now (doctor)", name)
            await service.spawner.poll_and_notify()  # calls the hub's restart, once
            for _ in range(100):  # the restart is scheduled: wait for its process
                service = self._service(name)
                if self._state(service)["running"]:
                    break
                await asyncio.sleep(0.1)
        self.write(self._state(service))


def doctor_handlers(state_dir: str, kernel_socket: str | None, student_prefix: str) -> list[tuple]:
    """JupyterHub.extra_handlers entries (the hub puts them under its own prefix)."""
    return [
        (
            r"/api/mlworkshop/fork-server",
            ForkServerHandler,
            {
                "state_dir": state_dir,
                "kernel_socket": kernel_socket,
                "student_prefix": student_prefix,
            },
        ),
        (r"/api/mlworkshop/services/([^/]+)", ServiceHandler),
    ]
