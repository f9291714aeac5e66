"""The usage service in JupyterHub's config: a managed service, its role, our scopes, access for all."""

from __future__ import annotations

from traitlets.config import Config

from mlworkshop.config import MLWorkshopConfig
from mlworkshop.hub.configure import configure
from mlworkshop.hub.usage_service import ACCESS, SCOPE_ADMIN, SCOPE_READ, usage_service_config
from mlworkshop.site import Site, init_site


def _cfg(**usage) -> MLWorkshopConfig:
    return MLWorkshopConfig.model_validate({"usage": usage, "auth": {"admin_users": ["teacher"]}})


def _site(path) -> Site:
    """A site as `mlworkshop init` leaves it (secrets and the usage service's port made once)."""
    site = Site(path)
    init_site(site)
    return site


def test_service_role_scopes_and_access(tmp_path):
    site = _site(tmp_path)
    c = configure(Config(), _cfg(service_port=9123), site)
    [usage] = [s for s in c.JupyterHub.services if s["name"] == "usage"]
    assert usage["url"] == "http://127.0.0.1:9123"
    assert usage["command"][1:] == ["-m", "mlworkshop.usage.service"]
    assert (
        usage["environment"]["MLWORKSHOP_SITE"] == str(tmp_path)
        and usage["oauth_no_confirm"] is True
    )
    assert usage["cwd"] == "/"  # never the hub's working folder (<site>/state, root's alone)
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    service_role = roles["mlworkshop-usage-service"]
    assert service_role["services"] == ["usage"]
    assert set(service_role["scopes"]) == {
        "list:users",
        "read:users",
        "read:servers",
        "delete:servers",
    }
    assert roles["mlworkshop-usage-admin"]["users"] == ["teacher"]
    assert set(c.JupyterHub.custom_scopes) == {SCOPE_READ, SCOPE_ADMIN}
    assert (
        ACCESS in c.JupyterHub.extra_user_scopes
    )  # every user may log in to it (and sees only themselves)
    assert [s["name"] for s in c.JupyterHub.services][:1] == [
        "mlworkshop-cli"
    ]  # the others are kept


def test_free_port_is_picked_once_per_site(tmp_path):
    site = _site(tmp_path)
    first = usage_service_config(_cfg(), site).services[0]["url"]
    init_site(site)  # kept by a second init
    assert first == usage_service_config(_cfg(), site).services[0]["url"]
    assert (tmp_path / "state" / "usage_service_port").read_text().strip() == first.rsplit(":", 1)[
        1
    ]


def test_disabled_means_no_service(tmp_path):
    c = configure(Config(), _cfg(enabled=False), _site(tmp_path))
    assert all(s["name"] != "usage" for s in c.JupyterHub.services)
    assert all(not r["name"].startswith("mlworkshop-usage") for r in c.JupyterHub.load_roles)


def test_hub_pages_announce_a_budget_near_or_over(tmp_path):
    import datetime as dt
    from types import SimpleNamespace

    from mlworkshop.hub.usage_hooks import UsageAnnouncement, _announcements
    from mlworkshop.usage.store import UsageStore

    (tmp_path / "state").mkdir()
    # the config configure() was given counts, not a second read of mlworkshop.yaml (issue 12, item 3)
    (tmp_path / "mlworkshop.yaml").write_text("usage:\n  grace_minutes: 10\n", encoding="utf-8")
    c = configure(Config(), _cfg(grace_minutes=20), _site(tmp_path))
    announce = c.JupyterHub.template_vars["announcement"]
    assert isinstance(announce, UsageAnnouncement) and announce.base_url == "/"
    assert announce.db_url == f"sqlite:///{tmp_path / 'state' / 'usage.sqlite'}"
    store = UsageStore(f"sqlite:///{tmp_path / 'state' / 'usage.sqlite'}")
    alice, bob = SimpleNamespace(name="alice"), SimpleNamespace(name="bob")
    a = store.open_session("alice", n_devices=1, device_kind="nvidia")
    b = store.open_session("bob")
    assert announce(alice) == "" and announce(None) == ""
    _announcements.clear()
    store.mark(
        a, warned_at=dt.datetime(2026, 3, 2, 10), over_limit_at=dt.datetime(2026, 3, 2, 10, 0)
    )
    store.mark(b, warned_at=dt.datetime(2026, 3, 2, 10))
    text = announce(alice)
    assert (
        "used up" in text and "stops at 10:20 UTC" in text and 'href="/services/usage/me"' in text
    )
    assert announce(bob).startswith("You have used most of your weekly budget")
    store.close()


def test_the_service_gets_the_hubs_config_without_the_hub_database_url(tmp_path):
    """A root hub's usage service runs as its own account and cannot read mlworkshop.yaml (0600):
    the hub hands it the config it loaded, minus hub.db_url (a password the service never needs)."""
    from mlworkshop.usage.settings import CONFIG_ENV, service_config

    cfg = MLWorkshopConfig.model_validate(
        {
            "usage": {"service_port": 9123, "db_url": "postgresql://u:pw@db/usage"},
            "hub": {"db_url": "postgresql://hub:secret@db/hub"},
            "auth": {"admin_users": ["teacher"]},
        }
    )
    [usage] = usage_service_config(cfg, Site(tmp_path)).services
    passed = service_config(usage["environment"], Site(tmp_path))
    assert passed.usage == cfg.usage and passed.auth == cfg.auth and passed.spawner == cfg.spawner
    assert passed.hub.db_url is None and "secret" not in usage["environment"][CONFIG_ENV]
    # run by hand (no hub), the service reads the site's file as before
    (tmp_path / "mlworkshop.yaml").write_text("usage:\n  grace_minutes: 7\n", encoding="utf-8")
    assert service_config({}, Site(tmp_path)).usage.grace_minutes == 7


def test_which_account_the_service_runs_as(tmp_path, monkeypatch):
    """A root hub runs it as _mlw-usage; a hub that is not root (nothing to switch to) and the
    docker backend (the engine's socket is root's to give anyway) run it as the hub's own user."""
    from mlworkshop.hub import service_accounts

    for root, backend, user in (
        (True, "local", "_mlw-usage"),
        (False, "local", None),
        (True, "docker", None),
    ):
        monkeypatch.setattr(service_accounts.os, "geteuid", lambda root=root: 0 if root else 1000)
        cfg = MLWorkshopConfig.model_validate(
            {"usage": {"service_port": 9123}, "spawner": {"backend": backend}}
        )
        [usage] = usage_service_config(cfg, Site(tmp_path)).services
        assert usage.get("user") == user, (root, backend)
