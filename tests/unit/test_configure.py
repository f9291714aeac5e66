"""The config -> traitlets mapping (hub/configure.py) is pure: build a Config and look at it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from traitlets.config import Config

from mlworkshop.config import MLWorkshopConfig
from mlworkshop.hub.configure import CULLER_SERVICE, configure
from mlworkshop.site import Site, SiteNotReady, init_site


def build(tmp_path: Path, **sections) -> tuple[Config, Site]:
    site = Site(tmp_path / "site")
    if not site.root.exists():
        init_site(
            site
        )  # as `mlworkshop init` / `up` leave it: configure only reads secrets and ports
    cfg = MLWorkshopConfig.model_validate(sections)
    return configure(Config(), cfg, site), site


def spawner_value(c: Config, name: str):
    """A spawner option wherever it is set: the spawner class's own section, else a base one."""
    cls = c.JupyterHub.spawner_class.rsplit(".", 1)[-1]
    for section in (cls, "WorkshopSpawner", "Spawner"):
        if section in c and name in c[section]:
            return c[section][name]
    raise AssertionError(f"{name} is not set for {cls}")


def service(c: Config, name: str) -> dict | None:
    return next((s for s in c.JupyterHub.services if s["name"] == name), None)


def test_authenticator_and_default_database(tmp_path):
    c, site = build(tmp_path)
    assert c.JupyterHub.authenticator_class == "mlworkshop.hub.auth.MLWorkshopAuthenticator"
    expected = f"sqlite:///{site.root / 'state' / 'jupyterhub.sqlite'}"
    assert c.JupyterHub.db_url == expected
    assert c.MLWorkshopAuthenticator.db_url == expected  # accounts live in the hub's own database


def test_postgresql_url_is_passed_through(tmp_path):
    url = "postgresql://hub@127.0.0.1:5432/hubdb"
    c, _ = build(tmp_path, hub={"db_url": url})
    assert c.JupyterHub.db_url == url and c.MLWorkshopAuthenticator.db_url == url


def test_auth_options_reach_the_authenticator(tmp_path):
    c, _ = build(
        tmp_path,
        auth={
            "open_signup": True,
            "admin_users": ["ada"],
            "min_password_length": 12,
            "lockout_attempts": 7,
            "lockout_minutes": 3,
            "check_common_passwords": False,
        },
    )
    a = c.MLWorkshopAuthenticator
    assert (a.open_signup, a.admin_users, a.min_password_length) == (True, {"ada"}, 12)
    c2, _ = build(tmp_path, auth={"admin_users": ["Ada"]})
    assert c2.MLWorkshopAuthenticator.admin_users == {"ada"}
    assert (a.lockout_attempts, a.lockout_minutes, a.check_common_passwords) == (7, 3, False)
    assert a.allow_all is False
    assert {"root", CULLER_SERVICE} <= set(a.reserved_names)


def test_culler_runs_with_the_default_timeout(tmp_path):
    c, _ = build(tmp_path)
    culler = service(c, CULLER_SERVICE)
    assert culler is not None
    assert "--timeout=7200" in culler["command"] and "--cull-every=300" in culler["command"]
    role = next(r for r in c.JupyterHub.load_roles if CULLER_SERVICE in r["services"])
    assert "delete:servers" in role["scopes"]


def test_culler_uses_the_configured_timeout(tmp_path):
    c, _ = build(tmp_path, culler={"timeout": 900, "every": 60})
    command = service(c, CULLER_SERVICE)["command"]
    assert "--timeout=900" in command and "--cull-every=60" in command
    assert "--timeout=7200" not in command


def test_culler_absent_when_disabled(tmp_path):
    c, _ = build(tmp_path, culler={"enabled": False})
    assert service(c, CULLER_SERVICE) is None
    assert not any(CULLER_SERVICE in r["services"] for r in c.JupyterHub.load_roles)
    assert service(c, "mlworkshop-cli") is not None  # the CLI's own service stays


def test_the_cli_service_is_an_admin_without_an_admin_role_entry(tmp_path):
    """Only an admin may grant admin (`user add --admin` with the hub running); an admin role
    entry would pin the admin users to auth.admin_users at every start (issue 11, 7c)."""
    c, _ = build(tmp_path, auth={"admin_users": ["boss"]})
    assert service(c, "mlworkshop-cli")["admin"] is True
    assert not any(r["name"] == "admin" for r in c.JupyterHub.load_roles)


def test_spawner_lands_on_lab_and_knows_the_site(tmp_path):
    c, site = build(tmp_path)
    assert spawner_value(c, "default_url") == "/lab"
    assert spawner_value(c, "site_root") == str(site.root)
    assert spawner_value(c, "content_dir") == str(site.root / "content")
    c2, _ = build(
        tmp_path, spawner={"default_url": "/tree"}, workspace={"content_dir": "/srv/course"}
    )
    assert spawner_value(c2, "default_url") == "/tree"
    assert spawner_value(c2, "content_dir") == "/srv/course"


def test_cookie_secret_file_is_inside_the_sites_secrets(tmp_path):
    c, site = build(tmp_path)
    path = Path(c.JupyterHub.cookie_secret_file)
    assert path.parent == site.root / "secrets" and path.name == "cookie_secret"


def test_ports(tmp_path):
    c, _ = build(tmp_path)
    # a root hub's loopback ports are below 1024, where no student account can bind them
    hub_port, proxy_api_port = (881, 882) if os.geteuid() == 0 else (8081, 8001)
    assert (c.JupyterHub.ip, c.JupyterHub.port, c.JupyterHub.hub_port) == (
        "127.0.0.1",
        8000,
        hub_port,
    )
    assert c.ConfigurableHTTPProxy.api_url == f"http://127.0.0.1:{proxy_api_port}"
    c, _ = build(
        tmp_path,
        hub={
            "ip": "0.0.0.0",
            "port": 9443,
            "internal_port": 9081,
            "proxy_api_port": 9001,
            "base_url": "/jupyter",
        },
    )
    assert (c.JupyterHub.ip, c.JupyterHub.port, c.JupyterHub.hub_port) == ("0.0.0.0", 9443, 9081)
    assert c.JupyterHub.hub_ip == "127.0.0.1"  # the hub's API never leaves loopback
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:9001"
    assert c.JupyterHub.base_url == "/jupyter/"


def test_hub_restart_keeps_user_servers(tmp_path):
    c, _ = build(tmp_path)
    assert c.JupyterHub.cleanup_servers is False


def test_same_config_same_result(tmp_path):
    first, _ = build(tmp_path, culler={"timeout": 600})
    second, _ = build(tmp_path, culler={"timeout": 600})
    assert first == second  # secrets are made once and then kept, so the mapping is repeatable


def test_local_servers_pids_limit(tmp_path):
    c, _ = build(tmp_path)
    assert spawner_value(c, "max_processes") == 2048
    c, _ = build(tmp_path, spawner={"local": {"max_processes": 300}})
    assert spawner_value(c, "max_processes") == 300


def test_configure_only_sets_values(tmp_path):
    """Issue 12, item 3: secrets and ports are made by `init`; configure on a site without them
    creates nothing and says what to run."""
    site = Site(tmp_path / "bare")
    with pytest.raises(
        SiteNotReady, match=r"secrets/proxy_auth_token is missing\. Run `mlworkshop init`"
    ):
        configure(Config(), MLWorkshopConfig(), site)
    assert not site.root.exists()
    c, site = build(tmp_path)
    made = sorted(p.relative_to(site.root) for p in site.root.rglob("*"))
    configure(Config(), MLWorkshopConfig(), site)
    assert sorted(p.relative_to(site.root) for p in site.root.rglob("*")) == made


def test_spawner_sections_are_traits(tmp_path):
    """Accelerators and usage reach the spawners as traits (not a second read of the YAML)."""
    c, site = build(
        tmp_path,
        accelerators={"mode": "exclusive", "max_per_user": 3},
        usage={"failover_open": False},
    )
    assert (
        c.WorkshopSpawner.accelerators["mode"] == "exclusive"
        and c.WorkshopSpawner.accelerators["max_per_user"] == 3
    )
    assert c.WorkshopSpawner.usage["failover_open"] is False
    assert c.WorkshopSpawner.hub_db_url == c.JupyterHub.db_url
    assert c.WorkshopSpawner.usage_db_url == site.usage_db_url(MLWorkshopConfig())
