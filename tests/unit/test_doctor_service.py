"""The doctor in JupyterHub's config (hub/doctor_service.py through hub/configure.py): the watch
service, its role, and the hub API endpoints the doctor asks; values only."""

from __future__ import annotations

from mlworkshop.hub.doctor_api import ForkServerHandler, ServiceHandler

from .test_configure import build, service


def test_the_watch_service_runs_the_doctor_on_its_schedule_with_its_own_role(tmp_path):
    c, site = build(tmp_path, doctor={"watch_every": 120})
    watch = service(c, "doctor")
    assert watch["command"][-4:] == ["doctor", "--watch", "--every=120", f"--site={site.root}"]
    assert "user" not in watch  # the hub's own user: its repairs need root under a root hub
    assert "url" not in watch and "api_token" not in watch  # no web app; the hub gives it a token
    [role] = [r for r in c.JupyterHub.load_roles if r["services"] == ["doctor"]]
    assert set(role["scopes"]) == {
        "list:users",
        "read:users",
        "read:servers",
        "admin:server_state",
        "admin:servers",
    }
    handlers = {h[0]: h for h in c.JupyterHub.extra_handlers}
    fork = handlers["/api/mlworkshop/fork-server"]
    assert fork[1] is ForkServerHandler and fork[2]["state_dir"] == str(site.state)
    assert handlers["/api/mlworkshop/services/([^/]+)"][1] is ServiceHandler


def test_no_watch_service_when_watch_every_is_0_but_the_endpoints_stay(tmp_path):
    c, _site = build(tmp_path, doctor={"watch_every": 0})
    assert service(c, "doctor") is None
    assert not any(r["name"] == "mlworkshop-doctor" for r in c.JupyterHub.load_roles)
    assert len(c.JupyterHub.extra_handlers) == 2  # `mlworkshop doctor` by hand still uses them
