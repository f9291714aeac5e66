"""The usage service's app as app.py puts it together from its modules (api, security, pages,
context): every route where it was, the same OpenAPI, and the answers that need no hub (health,
401 without credentials, the pages' redirect to the hub's login, the OAuth state check)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mlworkshop.config import MLWorkshopConfig
from mlworkshop.usage.app import create_app
from mlworkshop.usage.hubclient import HubClient
from mlworkshop.usage.settings import ServiceSettings
from mlworkshop.usage.store import UsageStore

PREFIX = "/services/usage/"
API_PATHS = {
    "health",
    "me",
    "report",
    "servers",
    "servers/{username}/stop",
    "sessions",
    "sessions/{session_id}",
    "sessions/{session_id}/end",
    "sessions/{session_id}/samples",
    "users/{username}/limits",
    "users/{username}/quota",
    "users/{username}/usage",
}


@pytest.fixture
def client(tmp_path):
    store = UsageStore(f"sqlite:///{tmp_path / 'usage.sqlite'}")
    hub = HubClient("http://127.0.0.1:9/hub/api", "service-token")  # nothing here asks the hub
    app = create_app(
        ServiceSettings(api_url=hub.api_url, token=hub.token), MLWorkshopConfig(), store, hub
    )
    with TestClient(app) as client:
        yield client
    store.close()


def test_the_api_is_where_it_was(client):
    spec = client.get(PREFIX + "openapi.json").json()
    assert {p.removeprefix(PREFIX + "api/") for p in spec["paths"]} == API_PATHS
    assert spec["info"]["title"] == "mlworkshop usage"


def test_what_needs_no_hub(client):
    health = client.get(PREFIX + "api/health")
    assert health.status_code == 200 and health.json()["rounds"] == 0
    refused = client.get(PREFIX + "api/sessions")
    assert refused.status_code == 401 and "Log in through the hub" in refused.json()["detail"]
    for page in ("", "me", "admin"):
        moved = client.get(PREFIX + page, follow_redirects=False)
        assert moved.status_code == 302 and moved.headers["location"].startswith(
            PREFIX + "oauth_login?next="
        )
    login = client.get(
        PREFIX + "oauth_login", params={"next": PREFIX + "me"}, follow_redirects=False
    )
    assert login.headers["location"].startswith("/hub/api/oauth2/authorize?client_id=service-usage")
    assert (
        client.get(PREFIX + "oauth_callback", params={"code": "x", "state": "forged"}).status_code
        == 400
    )
    assert client.get(PREFIX + "logout", follow_redirects=False).headers["location"] == "/hub/home"
    assert client.get(PREFIX + "api/health%01").status_code == 400  # control characters
