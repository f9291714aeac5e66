"""auth.method: header -- the config section (config/auth_header.py), its mapping onto the hub
(hub/configure.py apply_header_auth) and which proxy addresses may be trusted (hub/auth_header.py).
The sign-in itself, through a real reverse proxy and a real who-am-I service:
tests/integration/test_header_sso.py."""

from __future__ import annotations

import pytest
from traitlets.config import Config

from mlworkshop.config import MLWorkshopConfig
from mlworkshop.hub.auth_header import local_addresses, local_trusted
from mlworkshop.hub.configure import apply_auth
from mlworkshop.site import Site


def cfg(**header) -> MLWorkshopConfig:
    return MLWorkshopConfig.model_validate({"auth": {"method": "header", "header": header}})


def test_header_needs_a_trusted_proxy_or_a_whoami_url():
    with pytest.raises(ValueError, match="neither auth.header.trusted_proxies"):
        MLWorkshopConfig.model_validate({"auth": {"method": "header"}})
    assert cfg(trusted_proxies=["10.1.2.3"]).auth.header.trusted_proxies == ["10.1.2.3/32"]
    assert cfg(whoami_url="https://sso.example.edu/me").auth.header.whoami_url
    MLWorkshopConfig.model_validate({"auth": {"method": "native"}})  # native needs none of it


@pytest.mark.parametrize(
    "header, message",
    [
        ({"trusted_proxies": ["proxy.example.edu"]}, "not an IP address or network"),
        ({"trusted_proxies": ["10.0.0.1"], "username_header": "X Remote"}, "header name"),
        ({"whoami_url": "sso.example.edu/me"}, "http:// or https://"),
        ({"whoami_url": "https://sso/me", "login_url": "ftp://x"}, "http:// or https://"),
    ],
)
def test_bad_header_settings_say_what_is_wrong(header, message):
    with pytest.raises(ValueError, match=message):
        cfg(**header)


def test_the_mapping(tmp_path):
    c = Config()
    config = cfg(
        trusted_proxies=["10.9.8.7"],
        whoami_url="https://sso.example.edu/me",
        cookies=["corp"],
        login_url="https://sso.example.edu/login?r={next}",
    )
    apply_auth(c, config, Site(tmp_path))
    assert c.JupyterHub.authenticator_class == "mlworkshop.hub.auth_header.HeaderAuthenticator"
    a = c.HeaderAuthenticator
    assert (a.trusted_proxies, a.whoami_url, a.forward_cookies) == (
        ["10.9.8.7/32"],
        "https://sso.example.edu/me",
        ["corp"],
    )
    assert a.sso_login_url == "https://sso.example.edu/login?r={next}"
    assert a.auto_login is True and a.allow_all is True
    assert "mlworkshop-cli" in a.reserved_names


def test_addresses_of_this_machine_cannot_be_trusted():
    assert local_trusted(["127.0.0.2", "127.0.0.0/8", "::1"]) == ["127.0.0.2", "127.0.0.0/8", "::1"]
    mine = next(a for a in local_addresses() if a.version == 4 and not a.is_loopback)
    assert local_trusted([str(mine), f"{mine}/24"]) == [str(mine), f"{mine}/24"]
    assert local_trusted(["192.0.2.7", "2001:db8::7"]) == []  # documentation ranges: elsewhere
