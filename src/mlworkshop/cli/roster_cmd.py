"""`mlworkshop user import` (a class roster) and `mlworkshop user link` (a one-time link to set a
password). Like the other `user` commands they work with the hub running (groups through its
REST API) or stopped (accounts written directly; the hub makes the roster's group memberships at
its next start, hub/auth.py add_user).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..accounts.errors import NoSuchAccount
from ..accounts.passwords import hash_password
from ..accounts.roster import RosterError, SheetRow, read_roster, write_sheet
from ..config import MLWorkshopConfig, load_config
from ..names import BadUsername, normalize_username
from ..site import Site, resolve_site
from .handles import account_store as _store
from .handles import hub_api

out = Console(soft_wrap=True)
SiteOpt = Annotated[
    Path | None,
    typer.Option(
        "--site",
        help="Site folder. Default: $MLWORKSHOP_SITE, else ./site (or /srv/mlworkshop as root).",
    ),
]


class Failure(RuntimeError):
    """A message for the admin (cli/main.py prints it; exit status 2)."""


def _loaded(site: Path | None) -> tuple[Site, MLWorkshopConfig]:
    s = resolve_site(site)
    if not s.config_file.exists():
        raise Failure(
            f"No site at {s.root} (no {s.config_file.name}). Create it with `mlworkshop init --site {s.root}`."
        )
    return s, load_config(s.root)


def _name(raw: str) -> str:
    try:
        return normalize_username(raw)
    except BadUsername as exc:
        raise Failure(str(exc)) from None


def _reserved(cfg) -> frozenset[str]:
    from ..hub.configure import CLI_SERVICE, CULLER_SERVICE
    from ..hub.hublog import LOG_SOURCES

    return frozenset({CLI_SERVICE, CULLER_SERVICE, "root", "admin-group", *LOG_SOURCES})


def _login_url(cfg) -> str:
    from ..hub.configure import public_url

    return public_url(cfg).rstrip("/") + "/hub/login"


def new_password(length: int = 12) -> str:
    """Easy to type from paper: characters from an alphabet without look-alikes (12: ~70 bits)."""
    alphabet = "abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def roster_import(
    roster: Annotated[Path, typer.Argument(help="CSV: username, display_name, group, email.")],
    reset_passwords: Annotated[
        bool,
        typer.Option(
            "--reset-passwords", help="Give accounts that exist already a new password too."
        ),
    ] = False,
    sheet: Annotated[
        Path | None,
        typer.Option(
            "--sheet",
            help="Where the password sheet goes (PATH.csv and PATH.html, 0600). Default: beside "
            "the roster, ROSTER-passwords-TIME.",
        ),
    ] = None,
    site: SiteOpt = None,
) -> None:
    """Import a class roster: approved accounts in their JupyterHub groups, new passwords on a
    sheet to print. Run it again after changes: groups follow the roster, passwords stay."""
    s, cfg = _loaded(site)
    if not roster.is_file():
        raise Failure(f"No roster file at {roster}.")
    try:
        entries = read_roster(roster, _reserved(cfg))
    except RosterError as exc:
        raise Failure(str(exc)) from None
    store = _store(s, cfg)
    existing = {a.username: a for a in store.list()}
    api = hub_api(s, cfg)
    running = api.running()

    # passwords: new accounts, accounts without one yet (added on the Admin page), and the
    # others only when asked
    passwords = {
        e.username: new_password(max(12, cfg.auth.min_password_length))
        for e in entries
        if e.username not in existing or reset_passwords or not existing[e.username].has_password
    }
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:  # Argon2 frees the GIL
        hashes = dict(
            zip(
                passwords,
                pool.map(
                    partial(hash_password, cost=cfg.auth.password_hash_cost), passwords.values()
                ),
                strict=True,
            )
        )

    rows, moves = [], []  # moves: names whose roster group changes
    sync = []  # (name, group to be in, group to leave) for the hub
    for e in entries:
        before = existing.get(e.username)
        values: dict = {}
        if "display_name" in e.columns:
            values["display_name"] = e.display_name
        if "email" in e.columns:
            values["email"] = e.email
        pending = bool(before and before.groups_pending)
        old = before.roster_group if before else None
        left = before.group_left if pending else old  # what the hub has them in now
        if "group" in e.columns and e.group != old:
            left = left if left != e.group else None
            moves.append(e.username)
            values.update(roster_group=e.group, group_left=left, groups_pending=True)
            sync.append((e.username, e.group, left))
        elif pending:  # an earlier import's change the hub has not made yet
            sync.append((e.username, old, left))
        rows.append(
            (
                e.username,
                hashes.get(e.username, ""),
                e.username in passwords and bool(before),
                values,
            )
        )

    # the sheet first: passwords that reach the database are never lost
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = sheet or roster.with_name(f"{roster.stem}-passwords-{stamp}")
    sheet_rows = [
        SheetRow(e.username, e.display_name, e.group, passwords.get(e.username)) for e in entries
    ]
    csv_path, html_path = write_sheet(base, sheet_rows, _login_url(cfg), f"Accounts: {roster.stem}")
    try:
        made = store.import_roster(rows)
    except Exception as exc:
        for path in (csv_path, html_path):
            path.unlink(missing_ok=True)
        raise Failure(f"Nothing was imported (the database refused: {exc}).") from None

    # the hub: users and groups now (a user the hub makes here gets their group from the hub's
    # add_user already), or at its next start
    if running:
        for e in entries:
            api.create_user(e.username)  # approved accounts are hub users
        for name, group, left in sync:
            if left:
                api.remove_from_group(left, [name])
            if group:
                api.add_to_group(group, [name])
            store.update_details(name, groups_pending=False, group_left=None)

    updated = len(entries) - len(made)
    reset = sum(1 for e in entries if e.username in passwords and e.username in existing)
    out.print(
        f"Imported {roster.name}: {len(made)} new, {updated} already there"
        + (f" ({reset} with a new password)" if reset else "")
        + f"; {len(moves)} group change(s)"
        + (
            ""
            if not moves
            else " made in the hub"
            if running
            else " (the hub makes them when it starts)"
        )
        + "."
    )
    out.print(
        f"Password sheet: {csv_path} and {html_path} (readable only by you: print it, hand out the "
        "cards, then delete it).",
        highlight=False,
    )


def user_link(name: str, site: SiteOpt = None) -> None:
    """A one-time link with which NAME sets their own password (e.g. a user added on JupyterHub's
    Admin page). A new link replaces the last one."""
    s, cfg = _loaded(site)
    name = _name(name)
    from ..hub.configure import public_url

    store = _store(s, cfg)
    try:
        token = store.make_password_link(name, dt.timedelta(days=cfg.auth.password_link_days))
    except NoSuchAccount:
        api = hub_api(s, cfg)
        if not (api.running() and api.user(name) is not None):
            raise Failure(f"No account named {name!r}. See `mlworkshop user list`.") from None
        store.create(name, None, approved=True)  # a hub user without an account gets one
        token = store.make_password_link(name, dt.timedelta(days=cfg.auth.password_link_days))
    from urllib.parse import urlencode

    link = public_url(cfg).rstrip("/") + "/hub/set-password?" + urlencode({"token": token})
    out.print(
        f"One-time link for {name} (valid {cfg.auth.password_link_days} days; shown once):",
        highlight=False,
    )
    print(link)
