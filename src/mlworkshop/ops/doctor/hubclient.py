"""The doctor's handle on a running hub: its REST API on the loopback API port, with the CLI's
token (`mlworkshop doctor`) or the watch service's own (JUPYTERHUB_API_TOKEN, given by the hub).

Besides JupyterHub's API it uses the two endpoints of hub/doctor_api.py: the fork server (which
only the hub process can restart: it is the hub's child) and the hub's managed services.
"""

from __future__ import annotations

import os

import httpx

from ...config import MLWorkshopConfig
from ...site import Site, SiteNotReady


class HubClient:
    def __init__(self, site: Site, cfg: MLWorkshopConfig, token: str | None = None):
        base = cfg.hub.base_url.rstrip("/")
        self.url = f"http://127.0.0.1:{cfg.hub.api_port}{base}/hub/api"
        token = token or os.environ.get("JUPYTERHUB_API_TOKEN") or site.read_secret("cli_api_token")
        self.client = httpx.Client(headers={"Authorization": f"token {token}"}, timeout=20)

    @classmethod
    def connect(cls, site: Site, cfg: MLWorkshopConfig) -> HubClient | None:
        """A client when the hub's API answers, else None."""
        try:
            client = cls(site, cfg)
        except SiteNotReady:
            return None
        try:
            if client.client.get(client.url + "/", timeout=3).status_code == 200:
                return client
        except httpx.HTTPError:
            pass
        client.close()
        return None

    def close(self) -> None:
        self.client.close()

    def _json(self, method: str, path: str, **kwargs):
        response = self.client.request(method, self.url + path, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(
                f"the hub answered {response.status_code} to {method} {path}: {response.text[:200]}"
            )
        return response.json() if response.content else None

    def users(self) -> list[dict]:
        """Every user with their servers (and each server's state: the pid, for the local backend)."""
        return self._json("GET", "/users") or []

    def stop_server(self, user: str, server: str = "") -> None:
        path = f"/users/{user}/servers/{server}" if server else f"/users/{user}/server"
        self._json("DELETE", path)

    def fork_server(self, restart: bool = False) -> dict:
        return self._json("POST" if restart else "GET", "/mlworkshop/fork-server")

    def service(self, name: str, restart: bool = False) -> dict:
        return self._json("POST" if restart else "GET", f"/mlworkshop/services/{name}")
