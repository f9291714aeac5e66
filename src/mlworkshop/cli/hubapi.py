"""Talking to a running hub from the CLI, and changing the hub's database when none is running.

User commands work in both cases: with the hub up they go through its REST API (so its in-memory
state stays right); with the hub down they write the database directly.
"""

from __future__ import annotations

import pwd
import signal

import httpx
import psutil
from sqlalchemy.orm import Session

from ..config import MLWorkshopConfig
from ..db import SQLiteMode, make_engine
from ..site import Site


class HubAPI:
    def __init__(self, site: Site, cfg: MLWorkshopConfig):
        base = cfg.hub.base_url.rstrip("/")
        self.url = f"http://127.0.0.1:{cfg.hub.api_port}{base}/hub/api"
        token = site.secret("cli_api_token")
        self.client = httpx.Client(headers={"Authorization": f"token {token}"}, timeout=30)

    def running(self) -> bool:
        try:
            return self.client.get(self.url + "/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise RuntimeError(
                f"The hub refused {response.request.method} {response.request.url.path}: {message}"
            )
        return response

    def users(self) -> list[dict]:
        return self._check(self.client.get(self.url + "/users")).json()

    def user(self, name: str) -> dict | None:
        response = self.client.get(f"{self.url}/users/{name}")
        return None if response.status_code == 404 else self._check(response).json()

    def ensure_user(self, name: str, admin: bool) -> None:
        if self.user(name) is None:
            self._check(self.client.post(f"{self.url}/users/{name}", json={"admin": admin}))
        else:
            self.set_admin(name, admin)

    def create_user(self, name: str) -> None:
        """Make an approved account a hub user now (JupyterHub gives it the `user` role)."""
        if self.user(name) is None:
            self._check(self.client.post(f"{self.url}/users/{name}", json={}))

    def set_admin(self, name: str, admin: bool) -> None:
        if self.user(name) is not None:
            self._check(self.client.patch(f"{self.url}/users/{name}", json={"admin": admin}))

    def delete_user(self, name: str) -> None:
        if self.user(name) is not None:
            self._check(self.client.delete(f"{self.url}/users/{name}"))

    def add_to_group(self, group: str, names: list[str]) -> None:
        """Into a group, made if there is none yet."""
        made = self.client.post(f"{self.url}/groups/{group}")
        if made.status_code != 409:  # 409: it exists
            self._check(made)
        self._check(self.client.post(f"{self.url}/groups/{group}/users", json={"users": names}))

    def remove_from_group(self, group: str, names: list[str]) -> None:
        """Out of a group (nothing to do when the group is gone)."""
        response = self.client.request(
            "DELETE", f"{self.url}/groups/{group}/users", json={"users": names}
        )
        if response.status_code != 404:
            self._check(response)


# The hub is stopped: an admin flag or a deleted user is on disk before the command says so.
SQLITE = SQLiteMode(synchronous="FULL")


class HubDatabase:
    """Direct edits of the hub's own tables, only while the hub is stopped."""

    def __init__(self, db_url: str):
        self.db_url = db_url

    def _edit_user(self, name: str, edit) -> None:
        """Apply edit(db, orm_user) and commit; nothing to do if the hub never ran or has no such user."""
        from jupyterhub import orm

        engine = make_engine(self.db_url, SQLITE, pool_size=1, max_overflow=0)
        try:
            with engine.connect() as conn:
                if not engine.dialect.has_table(conn, "users"):
                    return  # the hub has never run: nothing to change
            with Session(engine) as db:
                user = db.query(orm.User).filter_by(name=name).one_or_none()
                if user is not None:
                    edit(db, user)
                    db.commit()
        finally:
            engine.dispose()

    def set_admin(self, name: str, admin: bool) -> None:
        self._edit_user(name, lambda db, user: setattr(user, "admin", admin))

    def delete_user(self, name: str, account: str | None = None) -> None:
        """account: the user's system account (a root hub runs their server as it)."""

        def stop_and_delete(db, user) -> None:
            for spawner in user.orm_spawners.values():
                _stop_process((spawner.state or {}).get("pid"), name, account)
            db.delete(user)

        self._edit_user(name, stop_and_delete)


def _is_users_server(proc: psutil.Process, name: str, account: str | None) -> bool:
    if account is not None:
        try:
            return proc.uids().real == pwd.getpwnam(account).pw_uid  # root hub: the user's own uid
        except KeyError:
            pass  # no such account: the hub ran servers as its own user
    try:
        return proc.environ().get("JUPYTERHUB_USER") == name
    except (psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _stop_process(pid: int | None, name: str, account: str | None) -> None:
    """A local server left running by a stopped hub: ask it to stop (SIGTERM) and wait a little.
    Only if that pid is still this user's server: a recorded pid can be stale (the server died,
    the machine restarted) and belong to any other process by now."""
    if not pid:
        return
    try:
        proc = psutil.Process(pid)
        if not _is_users_server(proc, name, account):
            return
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.TimeoutExpired):
        pass
