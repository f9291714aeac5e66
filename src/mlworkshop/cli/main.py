"""The `mlworkshop` command. Thin: parses arguments, calls the layers below, prints results.

Every error a lab admin can cause (bad config, bad name, dead database, busy port) ends as a
message and exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..accounts.errors import AccountExists, DatabaseUnavailable, NoSuchAccount
from ..accounts.passwords import WeakPassword, check_password_rules
from ..config import ConfigError, MLWorkshopConfig, get_key, load_config, set_keys, to_yaml
from ..names import BadUsername, normalize_username
from ..site import Site, init_site, resolve_site
from .handles import account_store as _store
from .handles import hub_api as _hub_api
from .handles import hub_database as _hub_database

app = typer.Typer(
    help="mlworkshop: a JupyterHub for ML classes and lab servers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Read, change and check mlworkshop.yaml.", no_args_is_help=True)
user_app = typer.Typer(
    help="Manage accounts (works with the hub running or stopped).", no_args_is_help=True
)
app.add_typer(config_app, name="config")
app.add_typer(user_app, name="user")


def _register_subcommands() -> None:
    from .accelerators_cmd import accelerators
    from .auth_cmd import auth_app
    from .backup_cmd import backup, restore
    from .bundle_cmd import bundle_app
    from .class_cmd import class_app
    from .doctor_cmd import doctor
    from .images_cmd import images_app
    from .k8s_cmd import k8s_app
    from .logs_cmd import logs
    from .packages_cmd import packages_app
    from .roster_cmd import roster_import, user_link
    from .service_cmd import service_app
    from .usage_cmd import usage_app

    app.command("accelerators")(accelerators)
    app.add_typer(auth_app, name="auth")
    app.command("backup")(backup)
    app.command("restore")(restore)
    app.command("doctor")(doctor)
    app.add_typer(bundle_app, name="bundle")
    app.add_typer(class_app, name="class")
    app.add_typer(images_app, name="images")
    app.add_typer(k8s_app, name="k8s")
    app.command("logs")(logs)
    user_app.command("import")(roster_import)
    user_app.command("link")(user_link)
    app.add_typer(packages_app, name="packages")
    app.add_typer(service_app, name="service")
    app.add_typer(usage_app, name="usage")


out = Console(soft_wrap=True)  # piped or logged output keeps paths and lines whole
err = Console(stderr=True, soft_wrap=True)

SiteOpt = Annotated[
    Path | None,
    typer.Option(
        "--site",
        help="Site folder. Default: $MLWORKSHOP_SITE, else ./site (or /srv/mlworkshop as root).",
    ),
]


class Failure(Exception):
    """A message for the admin; exit status 2."""


def _site(site: Path | None) -> Site:
    return resolve_site(site)


def _loaded(site: Path | None, must_exist: bool = True) -> tuple[Site, MLWorkshopConfig]:
    s = _site(site)
    if must_exist and not s.config_file.exists():
        raise Failure(
            f"No site at {s.root} (no {s.config_file.name}). Create it with `mlworkshop init --site {s.root}`."
        )
    return s, load_config(s.root)


# --- site -------------------------------------------------------------------------------
@app.command()
def init(site: SiteOpt = None) -> None:
    """Create the site: config with comments, secrets (0600), content folders, bundled lessons."""
    s = _site(site)
    done = init_site(s)
    for line in done:
        out.print(f"  {line}")
    out.print(f"Site ready at {s.root}" + ("" if done else " (nothing to do)"))


def _port_free(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((ip or "0.0.0.0", port))
        except OSError:
            return False
    return True


@app.command()
def up(
    site: SiteOpt = None,
    port: Annotated[int | None, typer.Option(help="Override hub.port.")] = None,
    ip: Annotated[str | None, typer.Option(help="Override hub.ip.")] = None,
) -> None:
    """Run the hub in the foreground (Ctrl-C stops it and its services; students' servers and
    the proxy keep running for the next `up`, `mlworkshop down` stops the proxy)."""
    s = _site(site)
    init_site(s)
    env = dict(os.environ, MLWORKSHOP_SITE=str(s.root))
    if port is not None:
        env["MLWORKSHOP_HUB__PORT"] = str(port)
    if ip is not None:
        env["MLWORKSHOP_HUB__IP"] = ip
    cfg = load_config(s.root, env)
    from ..hub.priority import set_hub_priority

    # now, not only in the hub's config file: a restarted hub spends its first two seconds here
    # and importing JupyterHub, while students' servers keep the cores busy
    if os.geteuid() == 0:  # (a hub that is not root is told why not by its config file)
        set_hub_priority(cfg.hub.nice)
    _store(s, cfg)  # fails early, with a message, when the database is unreachable
    from ..hub.idp_configure import check_idp_config

    missing = check_idp_config(cfg, s)  # auth.method's provider: client ID, secret, issuer...
    if missing:
        raise Failure(f"auth.method is {cfg.auth.method}, but: " + " ".join(missing))
    redirect = cfg.hub.https.redirect_port if cfg.hub.https.enabled else None
    from ..hub.proxy_process import kept_proxy_ports

    kept = kept_proxy_ports(s.state)  # the proxy an earlier hub left running (hub/kept_proxy.py)
    for what, host, number in (
        ("hub.port", cfg.hub.ip, cfg.hub.port),
        ("hub.internal_port", "127.0.0.1", cfg.hub.api_port),
        ("hub.proxy_api_port", "127.0.0.1", cfg.hub.proxy_port),
        *((("hub.https.redirect_port", "0.0.0.0", redirect),) if redirect else ()),
    ):
        if number not in kept and not _port_free(host, number):
            raise Failure(
                f"Port {number} ({what}) is already in use. Stop what uses it, or pick another: "
                f"`mlworkshop config set {what} PORT`"
                + (" or `--port PORT`." if what == "hub.port" else ".")
            )
    from ..hub.proxy_binary import proxy_command

    if not Path(proxy_command()[0]).exists():
        raise Failure(
            "configurable-http-proxy is not installed. Run `make install` (or `make up`) in the mlworkshop checkout."
        )
    from ..hub.workspace import prepare_shared_content

    as_root = os.geteuid() == 0
    prepare_shared_content(
        s.content(cfg), s.submissions, cfg.spawner.local.admin_group if as_root else None
    )
    if not as_root:
        err.print(
            "[yellow]Not running as root: every user's server runs as you, and users are not isolated.[/]"
        )
    else:
        from ..hub.ports import unprivileged_port_start, warning

        exposed = warning(cfg, unprivileged_port_start())
        if exposed:
            err.print(f"[yellow]Warning: {exposed}[/]", highlight=False)
    from ..hub.service_accounts import ServiceAccountError, prepare_helpers

    try:  # the proxy, culler and usage service run as accounts of their own under a root hub
        for line in prepare_helpers(s, cfg):
            out.print(line)
    except ServiceAccountError as exc:
        raise Failure(str(exc)) from None
    from ..hub.packages import prepare_packages

    try:  # the shared packages folder; the package index's account and folder (packages.index)
        for line in prepare_packages(s, cfg):
            out.print(line, highlight=False)
    except ServiceAccountError as exc:
        raise Failure(str(exc)) from None
    from ..hub.hublog import PROXY as PROXY_LOG
    from ..hub.hublog import start_tee
    from ..hub.tls import TLSError, prepare_for_proxy

    try:  # checked (or made) and copied where only the proxy's account reads the key
        https_lines = prepare_for_proxy(s, cfg)
    except TLSError as exc:
        raise Failure(str(exc)) from None
    teeing = start_tee(
        s.logs, busy=(PROXY_LOG,) if kept else ()
    )  # from here on, all output also goes to <site>/logs/hub.log
    for line in https_lines + ([f"warning: {teeing}"] if teeing else []):
        out.print(
            line, highlight=False, markup=False, emoji=False
        )  # a fingerprint's ":AB:" is no emoji
    config_file = Path(__file__).resolve().parents[1] / "hub" / "jupyterhub_config.py"
    scheme = "https" if cfg.hub.https.enabled else "http"
    out.print(
        f"mlworkshop hub on {scheme}://{cfg.hub.ip}:{cfg.hub.port}{cfg.hub.base_url} (site {s.root})"
    )
    os.chdir(s.state)
    sys.stdout.flush()
    os.execve(
        sys.executable, [sys.executable, "-m", "mlworkshop.hub.main", "-f", str(config_file)], env
    )


@app.command()
def down(site: SiteOpt = None) -> None:
    """Stop the hub (if it runs) and the proxy it leaves running between restarts."""
    s, _cfg = _loaded(site)  # a mistyped site is said, not answered with "was not running"
    from ..hub.proxy_process import stop_kept_proxy, stop_pid_file

    hub = stop_pid_file(s.state / "jupyterhub.pid", "jupyterhub")
    out.print(f"hub: stopped (pid {hub})" if hub else "hub: was not running")
    proxy = stop_kept_proxy(s.state)
    out.print(f"proxy: stopped (pid {proxy})" if proxy else "proxy: was not running")


@app.command()
def status(site: SiteOpt = None) -> None:
    """Is the hub running, how many accounts and servers."""
    s, cfg = _loaded(site)
    accounts = _store(s, cfg).list()
    api = _hub_api(s, cfg)
    out.print(f"site:      {s.root}")
    out.print(f"config:    valid ({s.config_file})")
    out.print(f"database:  {'SQLite in state/' if not cfg.hub.db_url else 'hub.db_url'}")
    waiting = sum(not a.approved for a in accounts)
    out.print(f"accounts:  {len(accounts)} ({waiting} waiting for approval)")
    if api.running():
        users = api.users()
        running = sum(
            1 for u in users for srv in (u.get("servers") or {}).values() if srv.get("ready")
        )
        out.print(
            f"hub:       running at {'https' if cfg.hub.https.enabled else 'http'}://{cfg.hub.ip}:{cfg.hub.port}{cfg.hub.base_url}, {running} server(s) up"
        )
    else:
        out.print("hub:       not running (start it with `mlworkshop up`)")


# --- config -----------------------------------------------------------------------------
@config_app.command("show")
def config_show(site: SiteOpt = None) -> None:
    """The effective config (file + MLWORKSHOP_* environment), as YAML."""
    from ruamel.yaml import YAML

    _, cfg = _loaded(site, must_exist=False)
    YAML().dump(cfg.model_dump(mode="json"), sys.stdout)


@config_app.command("get")
def config_get(key: str, site: SiteOpt = None) -> None:
    """One value as YAML, e.g. `mlworkshop config get hub.port`; `config set` takes it back as it is."""
    _, cfg = _loaded(site, must_exist=False)
    print(to_yaml(get_key(cfg, key)))  # as it is: no markup, emoji or wrapping


@config_app.command(
    "set", context_settings={"ignore_unknown_options": True}
)  # `hub.nice -10` is a value
def config_set(
    key: str,
    value: str,
    more: Annotated[
        list[str] | None,
        typer.Argument(
            help="More KEY VALUE pairs, set together with the first (e.g. `spawner.backend docker "
            "spawner.docker.image IMAGE`): validated as one change, written once or not at all."
        ),
    ] = None,
    site: SiteOpt = None,
) -> None:
    """Change values; the whole file is validated before anything is written."""
    s = _site(site)
    if not s.root.exists():
        raise Failure(f"No site at {s.root}. Create it with `mlworkshop init --site {s.root}`.")
    rest = list(more or [])
    if len(rest) % 2:
        raise Failure(
            f"`config set` takes KEY VALUE pairs: {rest[-1]!r} has no value. "
            "Example: mlworkshop config set hub.port 8000 culler.timeout 3600"
        )
    changes = [(key, value), *zip(rest[::2], rest[1::2], strict=True)]
    cfg = set_keys(s.root, changes)
    for name, _ in changes:
        print(f"{name} = {to_yaml(get_key(cfg, name), flow=True)} (restart the hub to apply)")


@config_app.command("validate")
def config_validate(site: SiteOpt = None) -> None:
    """Check mlworkshop.yaml and the environment overrides."""
    s, _ = _loaded(site)
    out.print(f"{s.config_file}: valid")


@config_app.command("schema")
def config_schema() -> None:
    """JSON Schema of mlworkshop.yaml, for editors."""
    print(json.dumps(MLWorkshopConfig.model_json_schema(), indent=2))


# --- users ------------------------------------------------------------------------------
def _name(raw: str) -> str:
    try:
        return normalize_username(raw)
    except BadUsername as exc:
        raise Failure(str(exc)) from None


def _read_password(password_stdin: bool, name: str, cfg: MLWorkshopConfig) -> tuple[str, bool]:
    """(password, generated). From stdin, a prompt, or generated when nobody can be asked."""
    if password_stdin:
        password = sys.stdin.readline().rstrip(
            "\r\n"
        )  # a file saved on Windows ends lines with \r\n
        generated = False
    elif sys.stdin.isatty():
        password = typer.prompt(f"Password for {name}", hide_input=True, confirmation_prompt=True)
        generated = False
    else:
        password, generated = secrets.token_urlsafe(12), True
    try:
        check_password_rules(
            password, cfg.auth.min_password_length, cfg.auth.check_common_passwords, name
        )
    except WeakPassword as exc:
        raise Failure(str(exc)) from None
    return password, generated


@user_app.command("add")
def user_add(
    name: str,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an administrator.")] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    site: SiteOpt = None,
) -> None:
    """Create an approved account (the only way to create the first admin)."""
    s, cfg = _loaded(site)
    name = _name(name)
    from ..hub.hublog import LOG_SOURCES

    if name in LOG_SOURCES:  # `mlworkshop logs hub` is the hub's log: no user can have that name
        raise Failure(
            f"The name {name!r} is reserved (`mlworkshop logs {name}` shows the {name}'s log). Choose another."
        )
    password, generated = _read_password(password_stdin, name, cfg)
    try:
        _store(s, cfg).create(name, password, approved=True, is_admin=admin)
    except AccountExists:
        raise Failure(
            f"An account named {name!r} exists already. Use `mlworkshop user reset-password {name}`."
        ) from None
    api = _hub_api(s, cfg)
    if api.running():
        api.ensure_user(name, admin)
    _report_password(f"Added {'admin' if admin else 'user'} {name}.", password, generated)


def _report_password(done: str, password: str, generated: bool) -> None:
    out.print(done)
    if generated:
        out.print(f"Generated password (shown once): {password}", highlight=False)


@user_app.command("list")
def user_list(site: SiteOpt = None) -> None:
    """Every account with its approval and admin status."""
    s, cfg = _loaded(site)
    table = Table("user", "status", "admin", "created (UTC)")
    for account in _store(s, cfg).list():
        admin = account.is_admin or account.username in cfg.auth.admin_users
        table.add_row(
            account.username,
            "approved" if account.approved else "waiting for approval",
            "yes" if admin else "",
            account.created.strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)


def _account_action(name: str, site: Path | None, action) -> tuple[Site, MLWorkshopConfig, str]:
    s, cfg = _loaded(site)
    name = _name(name)
    try:
        action(_store(s, cfg), name)
    except NoSuchAccount:
        raise Failure(f"No account named {name!r}. See `mlworkshop user list`.") from None
    return s, cfg, name


@user_app.command("approve")
def user_approve(name: str, site: SiteOpt = None) -> None:
    """Let a signed-up user log in."""
    s, cfg, name = _account_action(name, site, lambda store, n: store.approve(n))
    api = _hub_api(s, cfg)
    if api.running():
        api.create_user(name)  # otherwise the hub does it when it starts
    out.print(f"Approved {name}.")


@user_app.command("reset-password")
def user_reset_password(
    name: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    site: SiteOpt = None,
) -> None:
    """Set a new password (and clear lockouts)."""
    s, cfg = _loaded(site)
    name = _name(name)
    password, generated = _read_password(password_stdin, name, cfg)
    _account_action(name, site, lambda store, n: store.set_password(n, password))
    _report_password(f"New password set for {name}.", password, generated)


def _set_admin(name: str, site: Path | None, admin: bool) -> None:
    s, cfg, name = _account_action(name, site, lambda store, n: store.set_admin(n, admin))
    api = _hub_api(s, cfg)
    if api.running():
        api.set_admin(name, admin)
    else:
        _hub_database(s, cfg).set_admin(name, admin)
    note = (
        " (still admin through auth.admin_users in the config)"
        if not admin and name in cfg.auth.admin_users
        else ""
    )
    out.print(f"{name} is {'now' if admin else 'no longer'} an administrator{note}.")


@user_app.command("promote")
def user_promote(name: str, site: SiteOpt = None) -> None:
    """Make a user an administrator."""
    _set_admin(name, site, True)


@user_app.command("demote")
def user_demote(name: str, site: SiteOpt = None) -> None:
    """Take administrator rights away."""
    _set_admin(name, site, False)


@user_app.command("remove")
def user_remove(
    name: str,
    delete_files: Annotated[
        bool,
        typer.Option("--delete-files", help="Also delete the user's files and system account."),
    ] = False,
    site: SiteOpt = None,
) -> None:
    """Delete an account, stop its server and end every process of its system account, then
    delete that account (its uid is never handed out again). Files are kept unless --delete-files."""
    from ..hub.removal import delete_tree, remove_system_account

    s, cfg, name = _account_action(name, site, lambda store, n: store.delete(n))
    api = _hub_api(s, cfg)
    if api.running():
        api.delete_user(name)  # the hub stops the server first
    else:
        _hub_database(s, cfg).delete_user(name, cfg.spawner.local.user_prefix + name)
    problems = remove_system_account(cfg.spawner.local.user_prefix + name, s.state)
    home, submissions = s.users / name, s.submissions / name
    if delete_files:
        for folder in (home, submissions):
            problems += delete_tree(folder)
    if problems:
        raise Failure(
            f"Removed {name} from the hub, but not everything:\n  " + "\n  ".join(problems)
        )
    if delete_files:
        out.print(f"Removed {name}, their files and system account.")
    else:
        out.print(
            f"Removed {name}. Their files are kept in {home} and {submissions} "
            f"(moved to {s.root / 'removed'} if a new account named {name} is made)."
        )


@user_app.command("export")
def user_export(
    csv_format: Annotated[bool, typer.Option("--csv", help="CSV on standard output.")] = True,
    site: SiteOpt = None,
) -> None:
    """Every account as CSV: the roster's columns (username, display_name, group, email, which
    `user import` reads back), then approved, admin, created, approved_at."""
    from ..accounts.roster import export_csv

    s, cfg = _loaded(site)
    sys.stdout.write(export_csv(_store(s, cfg).list(), frozenset(cfg.auth.admin_users)))


_register_subcommands()


def main() -> None:
    try:
        app()
    except (Failure, ConfigError, DatabaseUnavailable) as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise SystemExit(2) from None
    except PermissionError as exc:
        err.print(
            f"[red]error:[/] permission denied: {exc.filename or exc}. Run as the site's owner (or root)."
        )
        raise SystemExit(2) from None
    except RuntimeError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise SystemExit(2) from None
    except OSError as exc:  # a full disk, a missing folder: say which file
        err.print(f"[red]error:[/] {exc.strerror or exc}: {exc.filename or ''}", highlight=False)
        raise SystemExit(2) from None
    except Exception as exc:  # noqa: BLE001 - the admin gets a line, a developer the traceback
        if os.environ.get("MLWORKSHOP_DEBUG"):
            raise
        err.print(
            f"[red]unexpected error:[/] {type(exc).__name__}: {exc}. "
            "Run again with MLWORKSHOP_DEBUG=1 for the details.",
            highlight=False,
        )
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
