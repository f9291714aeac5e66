"""`mlworkshop auth secret set|check`, `auth links`, `auth unlink`: institutional sign-in's secrets
and who owns which account (hub/idp.py, accounts/idp_links.py).

Wire it with `app.add_typer(auth_app, name="auth")` in cli/main.py.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..config import load_config
from ..hub.idp_configure import IDP_METHODS, check_idp_config, secret_name
from ..names import BadUsername, normalize_username
from ..site import resolve_site

auth_app = typer.Typer(
    help="Institutional sign-in (auth.method oidc, github, azuread, ldap): secrets and accounts.",
    no_args_is_help=True,
)
secret_app = typer.Typer(help="The client secret or LDAP bind password.", no_args_is_help=True)
auth_app.add_typer(secret_app, name="secret")

SiteOpt = Annotated[
    Path | None,
    typer.Option(
        "--site",
        help="Site folder. Default: $MLWORKSHOP_SITE, else ./site (or /srv/mlworkshop as root).",
    ),
]


class AuthCommandError(RuntimeError):
    """A message for the admin (cli/main.py prints it, exit status 2)."""


def _write_secret(path: Path, value: str) -> None:
    """0600 from the first byte, replaced whole (never half-written, never readable by others)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(value + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@secret_app.command("set")
def secret_set(
    method: Annotated[str, typer.Argument(help="oidc, github, azuread or ldap.")],
    site: SiteOpt = None,
) -> None:
    """Store the provider's client secret (ldap: the search bind password) in <site>/secrets/,
    0600. Typed at a hidden prompt, or piped in (`... | mlworkshop auth secret set oidc`); never
    printed, never written to mlworkshop.yaml. Restart the hub to use it."""
    if method not in IDP_METHODS:
        raise AuthCommandError(f"No secret for {method!r}: use one of {', '.join(IDP_METHODS)}.")
    s = resolve_site(site)
    if sys.stdin.isatty():
        value = getpass.getpass(f"{method} secret: ")
        if getpass.getpass("again: ") != value:
            raise AuthCommandError("The two entries differ; nothing was stored.")
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value.strip():
        raise AuthCommandError("The secret is empty; nothing was stored.")
    path = s.secrets / secret_name(method)
    _write_secret(path, value.strip())
    typer.echo(f"Stored in {path} (0600). Restart the hub (`mlworkshop up`) to use it.")


@secret_app.command("check")
def secret_check(site: SiteOpt = None) -> None:
    """Say what auth.method's provider still needs (client ID, secret, issuer...)."""
    s = resolve_site(site)
    cfg = load_config(s.root)
    problems = check_idp_config(cfg, s)
    for line in problems:
        typer.echo(line)
    if problems:
        raise typer.Exit(2)
    typer.echo(f"auth.method {cfg.auth.method}: nothing missing.")


@auth_app.command("links")
def links(site: SiteOpt = None) -> None:
    """Who at which provider owns which account (made at their first sign-in)."""
    s = resolve_site(site)
    from ..accounts.idp_links import IdPLinks  # SQLAlchemy: only for the commands that use it

    store = IdPLinks(s.db_url(load_config(s.root)))
    try:
        rows = store.list()
    finally:
        store.dispose()
    if not rows:
        typer.echo("No one has signed in through a provider yet.")
    for row in rows:
        typer.echo(f"{row.username}\t{row.provider}\t{row.idp_name}\t{row.subject}")


@auth_app.command("unlink")
def unlink(
    name: Annotated[str, typer.Argument(help="The account.")],
    site: SiteOpt = None,
) -> None:
    """Forget which provider user owns an account (the account and its files stay): the next
    person whose sign-in name gives this account gets it. For when one person's provider identity
    changed, or to settle a refused collision."""
    try:
        name = normalize_username(name)
    except BadUsername as exc:
        raise AuthCommandError(str(exc)) from None
    s = resolve_site(site)
    from ..accounts.idp_links import IdPLinks  # SQLAlchemy: only for the commands that use it

    store = IdPLinks(s.db_url(load_config(s.root)))
    try:
        found = store.unlink(name)
    finally:
        store.dispose()
    if not found:
        raise AuthCommandError(f"No provider user owns the account {name!r}.")
    typer.echo(f"{name} is no longer tied to a provider user; the next one to claim it gets it.")
