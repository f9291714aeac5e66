"""hub/configure.py with hub.https: JupyterHub hands configurable-http-proxy the proxy's copy of the
certificate and key (never the admin's own files or the site's secrets), the redirect port goes
on the proxy's command line (after setpriv under a root hub), and the public URL says https."""

from __future__ import annotations

from traitlets.config import Config

from mlworkshop.config import MLWorkshopConfig
from mlworkshop.hub.configure import apply_auth, apply_hub, proxy_arguments, public_url
from mlworkshop.hub.service_accounts import isolating
from mlworkshop.hub.tls import proxy_tls_files
from mlworkshop.site import Site, init_site


def _site(tmp_path) -> Site:
    site = Site(tmp_path / "site")
    init_site(site)
    return site


def _cfg(**https) -> MLWorkshopConfig:
    return MLWorkshopConfig.model_validate(
        {"hub": {"ip": "10.0.0.5", "port": 8443, "https": https}}
    )


def test_https_reaches_the_proxy_through_its_copy(tmp_path):
    site = _site(tmp_path)
    c = Config()
    apply_hub(
        c,
        _cfg(
            cert="/etc/letsencrypt/live/hub/fullchain.pem",
            key="/etc/letsencrypt/live/hub/privkey.pem",
            redirect_port=80,
        ),
        site,
    )
    cert, key = proxy_tls_files(site)
    assert (c.JupyterHub.ssl_cert, c.JupyterHub.ssl_key) == (str(cert), str(key))
    command = c.ConfigurableHTTPProxy.command
    assert command[-4:] == ["--redirect-port", "80", "--redirect-to", "8443"]
    if isolating():  # the proxy's own account runs it, options and all
        assert command[4].endswith("setpriv") and "--reuid=_mlw-proxy" in command
    auth = Config()
    apply_auth(auth, _cfg(cert="self-signed"), site)
    assert auth.MLWorkshopAuthenticator.public_url == "https://10.0.0.5:8443/"


def test_plain_http_is_unchanged(tmp_path):
    c = Config()
    apply_hub(c, MLWorkshopConfig(), _site(tmp_path))
    assert "ssl_cert" not in c.JupyterHub and "ssl_key" not in c.JupyterHub
    assert "--redirect-port" not in c.ConfigurableHTTPProxy.command
    assert public_url(MLWorkshopConfig()) == "http://127.0.0.1:8000/"


def test_no_redirect_without_a_port():
    assert proxy_arguments(_cfg(cert="self-signed")) == []
