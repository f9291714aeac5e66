"""The usage service in JupyterHub's config: a managed service, its role, our scopes, access for all."""

from __future__ import annotations

from traitlets.config import Config

from mlworkshop.config import MLWorkshopConfig
from mlworkshop.hub.configure import configure
from mlworkshop.hub.usage_service import ACCESS, SCOPE_ADMIN, SCOPE_READ, usage_service_config
from mlworkshop.site import Site


def _cfg(**usage) -> MLWorkshopConfig:
    return MLWorkshopConfig.model_validate({"usage": usage, "auth": {"admin_users": ["teacher"]}})


def test_service_role_scopes_and_access(tmp_path):
    site = Site(tmp_path)
    c = configure(Config(), _cfg(service_port=9123), site)
    [usage] = [s for s in c.JupyterHub.services if s["name"] == "usage"]
    assert usage["url"] == "http://127.0.0.1:9123"
    assert usage["command"][1:] == ["-m", "mlworkshop.usage.service"]
    assert usage["environment"] == {"MLWORKSHOP_SITE": str(tmp_path)} and usage["oauth_no_confirm"] is True
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    service_role = roles["mlworkshop-usage-service"]
    assert service_role["services"] == ["usage"]
    assert set(service_role["scopes"]) == {"list:users", "read:users", "read:servers", "delete:servers"}
    assert roles["mlworkshop-usage-admin"]["users"] == ["teacher"]
    assert set(c.JupyterHub.custom_scopes) == {SCOPE_READ, SCOPE_ADMIN}
    assert ACCESS in c.JupyterHub.extra_user_scopes  # every user may log in to it (and sees only themselves)
    assert [s["name"] for s in c.JupyterHub.services][:1] == ["mlworkshop-cli"]  # the others are kept


def test_free_port_is_picked_once_per_site(tmp_path):
    site = Site(tmp_path)
    first = usage_service_config(_cfg(), site).services[0]["url"]
    assert first == usage_service_config(_cfg(), site).services[0]["url"]
    assert (tmp_path / "state" / "usage_service_port").read_text().strip() == first.rsplit(":", 1)[1]


def test_disabled_means_no_service(tmp_path):
    c = configure(Config(), _cfg(enabled=False), Site(tmp_path))
    assert all(s["name"] != "usage" for s in c.JupyterHub.services)
    assert all(not r["name"].startswith("mlworkshop-usage") for r in c.JupyterHub.load_roles)
