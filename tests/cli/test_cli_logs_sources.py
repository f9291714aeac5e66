"""`mlworkshop logs hub|proxy|usage`: the hub's own output and its helpers' lines of it
(hub/hublog.py writes them; that a real hub's output lands there is
tests/integration/test_https_hub.py). These names are reserved: nobody signs up as `hub`."""

from __future__ import annotations

from traitlets.config import Config

from mlworkshop.config import MLWorkshopConfig
from mlworkshop.hub.configure import apply_auth
from mlworkshop.site import Site

from .clirun import assert_refused, mlw_here


def test_hub_proxy_and_usage_logs(site):
    logs = Site(site).logs
    (logs / "hub.log").write_bytes(b"".join(b"hub %d\n" % i for i in range(100)))
    (logs / "proxy.log").write_bytes(
        b"2026-12-01T20:26:02.848Z [ConfigProxy] \x1b[32minfo\x1b[39m: Proxying\n"
    )
    (logs / "usage.log.1").write_bytes(b"[I 2026-12-01 20:26:07,143 usage] old\n")
    (logs / "usage.log").write_bytes(b"[I 2026-12-01 20:26:08,143 usage] new\n")
    assert mlw_here(site, "logs", "hub", "-n", "2").stdout == "hub 98\nhub 99\n"
    assert (
        mlw_here(site, "logs", "proxy").stdout
        == "2026-12-01T20:26:02.848Z [ConfigProxy] \\x1b[32minfo\\x1b[39m: Proxying\n"
    )  # escapes shown, not obeyed
    assert (
        mlw_here(site, "logs", "usage").stdout
        == "[I 2026-12-01 20:26:07,143 usage] old\n[I 2026-12-01 20:26:08,143 usage] new\n"
    )


def test_no_hub_log_yet(site):
    assert_refused(
        mlw_here(site, "logs", "proxy"), "No proxy log yet", "logs/proxy.log", "mlworkshop up"
    )


def test_log_source_names_are_reserved(tmp_path):
    c = Config()
    apply_auth(c, MLWorkshopConfig(), Site(tmp_path))
    assert {"hub", "proxy", "usage"} <= set(c.MLWorkshopAuthenticator.reserved_names)


def test_the_cli_refuses_an_account_named_like_a_log(site):
    for name in ("hub", "Proxy", "usage"):
        assert_refused(
            mlw_here(site, "user", "add", name, "--password-stdin", input="A-Long-Pass-42\n"),
            f"{name.lower()!r} is reserved",
            "mlworkshop logs",
        )
