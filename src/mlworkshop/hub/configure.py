"""Maps the config model onto JupyterHub traitlets: pure functions that only set values, so a
test can build a `traitlets.config.Config` and assert on it. Nothing here creates a file: the
secrets and the usage service's port are made once by `mlworkshop init` (site.init_site) and only
read here (a site without them: SiteNotReady, saying to run init).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from traitlets.config import Config

from ..config import MLWorkshopConfig
from ..fastpath.protocol import PROVISIONER_NAME, SINGLEUSER_MODULE, SOCKET_ENV
from ..fastpath.singleuser import LAB_CONFIG
from ..site import Site
from .auth import TEMPLATES
from .hublog import LOG_SOURCES
from .hublog import PROXY as PROXY_LOG
from .idp_configure import IDP_METHODS, apply_idp_auth
from .packages import index_services, server_environment
from .proxy_binary import proxy_command
from .service_accounts import CULLER_ACCOUNT, PROXY_ACCOUNT, isolating, setpriv_command
from .tls import proxy_tls_files

CLI_SERVICE = "mlworkshop-cli"
CULLER_SERVICE = "idle-culler"
SERVER_CONFIG = str(Path(__file__).resolve().parent / "server_config")


def public_url(cfg: MLWorkshopConfig) -> str:
    """The hub's address as people type it (a wildcard listen address names no host)."""
    host = cfg.hub.ip if cfg.hub.ip not in ("", "0.0.0.0", "::") else "<this machine>"
    host = f"[{host}]" if ":" in host else host
    return (
        f"{'https' if cfg.hub.https.enabled else 'http'}://{host}:{cfg.hub.port}{cfg.hub.base_url}"
    )


def proxy_arguments(cfg: MLWorkshopConfig) -> list[str]:
    """configurable-http-proxy's options that JupyterHub does not pass: the plain-HTTP port that
    only redirects to HTTPS on hub.port."""
    https = cfg.hub.https
    if not (https.enabled and https.redirect_port):
        return []
    return ["--redirect-port", str(https.redirect_port), "--redirect-to", str(cfg.hub.port)]


def logged_to(log: Path, command: list[str]) -> list[str]:
    """`command` with its output appended to `log` (opened by the hub, before any privileges are
    dropped): the proxy outlives the hub (hub/kept_proxy.py), so it must not write into the hub's
    log pipe. JupyterHub appends the proxy's options, which `"$@"` passes on."""
    return ["/bin/sh", "-c", 'exec "$@" >>"$0" 2>&1', str(log), *command]


def singleuser_command() -> list[str]:
    return [sys.executable, "-m", SINGLEUSER_MODULE]


def apply_hub(c: Config, cfg: MLWorkshopConfig, site: Site) -> None:
    c.JupyterHub.ip = cfg.hub.ip
    c.JupyterHub.port = cfg.hub.port
    c.JupyterHub.base_url = cfg.hub.base_url
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = cfg.hub.api_port  # stable: running servers call it after a restart
    c.JupyterHub.db_url = site.db_url(cfg)
    c.JupyterHub.cookie_secret_file = str(site.secrets / "cookie_secret")
    c.JupyterHub.pid_file = str(site.state / "jupyterhub.pid")
    c.JupyterHub.log_level = cfg.hub.log_level
    c.JupyterHub.template_paths = [TEMPLATES]
    c.JupyterHub.cleanup_servers = False  # a hub restart leaves students' servers running
    # the proxy outlives the hub too, and the next hub adopts it (hub/kept_proxy.py); the hub's
    # cleanup only says so
    c.JupyterHub.proxy_class = "mlworkshop.hub.kept_proxy.KeptProxy"
    c.JupyterHub.cleanup_proxy = True
    c.ConfigurableHTTPProxy.auth_token = site.read_secret("proxy_auth_token")
    # a root hub's proxy runs as an account of its own (hub/service_accounts.py); the hub tells its
    # connections from anyone else's by that account (hub/peer.py)
    proxy = proxy_command() + proxy_arguments(cfg)
    c.ConfigurableHTTPProxy.command = logged_to(
        site.logs / PROXY_LOG, setpriv_command(PROXY_ACCOUNT, proxy) if isolating() else proxy
    )
    if (
        cfg.hub.https.enabled
    ):  # the proxy terminates TLS, from the copy `up` made for it (hub/tls.py)
        cert, key = proxy_tls_files(site)
        c.JupyterHub.ssl_cert, c.JupyterHub.ssl_key = str(cert), str(key)
    c.ConfigurableHTTPProxy.pid_file = str(site.state / "proxy.pid")
    c.ConfigurableHTTPProxy.should_start = True
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{cfg.hub.proxy_port}"


def apply_auth(c: Config, cfg: MLWorkshopConfig, site: Site) -> None:
    if cfg.auth.method == "header":  # a company SSO in front of the hub
        return apply_header_auth(c, cfg, site)
    if cfg.auth.method in IDP_METHODS:  # oidc, github, azuread, ldap: hub/idp_configure.py
        reserved = [CLI_SERVICE, CULLER_SERVICE, "root", "admin-group", *LOG_SOURCES]
        return apply_idp_auth(c, cfg, site, reserved)
    c.JupyterHub.authenticator_class = "mlworkshop.hub.auth.MLWorkshopAuthenticator"
    a = c.MLWorkshopAuthenticator
    a.db_url = site.db_url(cfg)
    a.open_signup = cfg.auth.open_signup
    a.admin_users = set(cfg.auth.admin_users)
    a.min_password_length = cfg.auth.min_password_length
    a.check_common_passwords = cfg.auth.check_common_passwords
    a.lockout_attempts = cfg.auth.lockout_attempts
    a.lockout_minutes = cfg.auth.lockout_minutes
    a.password_hash_cost = cfg.auth.password_hash_cost
    # log sources of `mlworkshop logs` (cli/logs_cmd.py SOURCES) too: a user of that name would be shadowed
    a.reserved_names = [CLI_SERVICE, CULLER_SERVICE, "root", "admin-group", *LOG_SOURCES]
    a.allow_all = False
    a.any_allow_config = True  # approved accounts are allowed by check_allowed
    a.proxy_account = PROXY_ACCOUNT if isolating() else ""
    a.public_url = public_url(cfg)
    a.password_link_days = cfg.auth.password_link_days


def apply_header_auth(c: Config, cfg: MLWorkshopConfig, site: Site) -> None:
    """auth.method header (hub/auth_header.py): the reverse proxy's username header, believed
    only from auth.header.trusted_proxies, or the who-am-I URL. Whoever the SSO names may sign
    in; admins are auth.admin_users and those the CLI promotes."""
    h = cfg.auth.header
    c.JupyterHub.authenticator_class = "mlworkshop.hub.auth_header.HeaderAuthenticator"
    a = c.HeaderAuthenticator
    a.db_url = site.db_url(cfg)
    a.admin_users = set(cfg.auth.admin_users)
    a.reserved_names = [CLI_SERVICE, CULLER_SERVICE, "root", "admin-group", *LOG_SOURCES]
    a.allow_all = True
    a.auto_login = True
    a.proxy_account = PROXY_ACCOUNT if isolating() else ""
    a.public_url = public_url(cfg)
    a.username_header = h.username_header
    a.trusted_proxies = list(h.trusted_proxies)
    a.whoami_url = h.whoami_url or ""
    a.username_field = h.username_field
    a.forward_cookies = list(h.cookies)
    a.sso_login_url = h.login_url or ""
    a.whoami_timeout = h.timeout


def apply_spawner(c: Config, cfg: MLWorkshopConfig, site: Site) -> None:
    """Options every backend shares go on the WorkshopSpawner (hub/lifecycle.py); each backend
    adds its own. The accelerators and usage sections are traits too: the spawner never reads
    mlworkshop.yaml itself, so jupyterhub_config.d/ can change them like anything else."""
    w = c.WorkshopSpawner
    w.site_root = str(site.root)
    w.content_dir = str(site.content(cfg))
    w.user_prefix = cfg.spawner.local.user_prefix
    w.admin_group = cfg.spawner.local.admin_group
    w.max_concurrent_starts = cfg.spawner.max_concurrent_starts or 2 * (os.cpu_count() or 1)
    w.accelerators = cfg.accelerators.model_dump(mode="json")
    w.hub_db_url = site.db_url(cfg)  # the device allocator's table lives in the hub's database
    w.usage = cfg.usage.model_dump(mode="json")
    w.usage_db_url = site.usage_db_url(cfg)
    if cfg.spawner.backend == "docker":
        from .docker_backend import apply_docker_spawner

        apply_docker_spawner(c, cfg, site)
        return
    if cfg.spawner.backend == "kubernetes":
        from .kube_backend import apply_kube_spawner

        apply_kube_spawner(c, cfg, site)
        return
    c.JupyterHub.spawner_class = "mlworkshop.hub.spawner.LocalSpawner"
    s = c.LocalSpawner
    s.cmd = singleuser_command()
    s.default_url = cfg.spawner.default_url
    s.start_timeout = cfg.spawner.start_timeout
    s.http_timeout = cfg.spawner.http_timeout
    # Server config of ours (jupyter_lsp and notebook_shim off: nothing uses them by default, and
    # they cost every server start); the admin's own environment entries win.
    # students' own and the admin's shared packages, the local index (hub/packages.py)
    s.environment = {
        "JUPYTER_CONFIG_PATH": os.pathsep.join([SERVER_CONFIG, LAB_CONFIG]),
        **server_environment(cfg, site),
        **cfg.spawner.environment,
    }
    s.preload = cfg.spawner.local.preload
    s.nice = cfg.spawner.local.nice
    s.max_processes = (
        cfg.spawner.local.max_processes
    )  # memory and CPUs: the spawn profile's (cgroup_limits)
    if cfg.spawner.local.preload and cfg.spawner.local.fork_kernels:
        s.environment = {
            SOCKET_ENV: str(site.kernel_socket),
            "JUPYTER_DEFAULT_PROVISIONER_NAME": PROVISIONER_NAME,
            **s.environment,
        }


def apply_language(c: Config, cfg: MLWorkshopConfig, site: Site) -> None:
    """hub.language: the hub's Jinja environments get mlworkshop's catalogs (hub/i18n.py), each
    request's language follows the setting (or the browser's, with auto), and so does the default
    of every new server's JupyterLab."""
    from .i18n import SETTING

    hub = c.JupyterHub
    options = dict(hub.get("jinja_environment_options") or {})
    options["extensions"] = [*options.get("extensions", []), "mlworkshop.hub.i18n.HubI18n"]
    hub.jinja_environment_options = options
    hub.tornado_settings = {**(hub.get("tornado_settings") or {}), SETTING: cfg.hub.language}
    c.WorkshopSpawner.language = cfg.hub.language


def apply_services(c: Config, cfg: MLWorkshopConfig, site: Site) -> None:
    """Every service of the hub, its roles and scopes, built here in one place and set once:
    the CLI's, the idle culler and the usage service (hub/usage_service.py builds its values)."""
    from .doctor_service import doctor_service_config
    from .usage_service import usage_service_config

    # admin: JupyterHub lets only an admin grant admin (`user add --admin`, `user promote`); no
    # scope does it. The flag, not an `admin` role entry in load_roles: with auth.admin_users set,
    # such an entry would make the admin role's users exactly admin_users and take admin away from
    # everyone promoted with the CLI at the next start. (The hub logs that the flag is deprecated.)
    services = [
        {"name": CLI_SERVICE, "api_token": site.read_secret("cli_api_token"), "admin": True}
    ]
    roles = [
        {
            "name": "mlworkshop-cli",
            "scopes": [
                "admin:users",
                "admin:servers",
                "list:users",
                "read:users",
                "admin:groups",  # `user import` puts a roster's users into their groups
                "list:groups",
                "read:groups",
            ],
            "services": [CLI_SERVICE],
        }
    ]
    if cfg.culler.enabled:
        services.append(
            {
                "name": CULLER_SERVICE,
                "command": [
                    sys.executable,
                    "-m",
                    "mlworkshop.hub.culler",
                    f"--timeout={cfg.culler.timeout}",
                    f"--cull-every={cfg.culler.every}",
                ],
                "cwd": "/",  # not the hub's (<site>/state), which the culler's account cannot enter
                **({"user": CULLER_ACCOUNT} if isolating() else {}),
            }
        )
        roles.append(
            {
                "name": "idle-culler",
                "scopes": [
                    "list:users",
                    "read:users:activity",
                    "read:servers",
                    "delete:servers",
                    # class pre-warm (hub/classes.py): read the groups' schedules, start servers
                    "list:groups",
                    "read:groups",
                    "servers",
                ],
                "services": [CULLER_SERVICE],
            }
        )
    services += index_services(cfg, site)  # packages.index: local (hub/packages.py)
    usage = usage_service_config(cfg, site)  # nothing when usage.enabled is false
    doctor = doctor_service_config(cfg, site)  # no watch service when doctor.watch_every is 0
    c.JupyterHub.services = services + usage.services + doctor.services
    c.JupyterHub.load_roles = roles + usage.roles + doctor.roles
    c.JupyterHub.extra_handlers = doctor.handlers  # what the doctor asks the hub (doctor_api)
    if usage.services:
        c.JupyterHub.custom_scopes = usage.custom_scopes
        c.JupyterHub.extra_user_scopes = usage.extra_user_scopes


def apply_templates(c: Config, cfg: MLWorkshopConfig, site: Site) -> None:
    """What the hub's pages are given besides JupyterHub's own values, set once: whether the
    login page offers "Sign up" (only native accounts have a signup page: under oidc, github,
    azuread, ldap or header sign-in the link led to a 404) and the usage budget note (an admin's
    own announcement, in jupyterhub_config.d/, wins)."""
    template_vars: dict = {"mlw_signup": cfg.auth.method == "native"}
    if cfg.usage.enabled:
        from .accelerators import settings_key
        from .usage_hooks import UsageAnnouncement

        template_vars["announcement"] = UsageAnnouncement(
            settings_key(cfg.usage.model_dump(mode="json")),
            site.usage_db_url(cfg),
            cfg.hub.base_url,
        )
    c.JupyterHub.template_vars = template_vars


def configure(c: Config, cfg: MLWorkshopConfig, site: Site) -> Config:
    for apply in (
        apply_hub,
        apply_auth,
        apply_spawner,
        apply_services,
        apply_templates,
        apply_language,
    ):
        apply(c, cfg, site)
    return c
