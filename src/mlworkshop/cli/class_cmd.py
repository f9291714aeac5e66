"""`mlworkshop class start|stop|status GROUP`: pre-warm a group's servers before the bell.

The schedule is written into the JupyterHub group (hub/classes.py says why there, and who acts on
it); the hub must be running. Wire it with `app.add_typer(class_app, name="class")` in cli/main.py.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import quote

import typer
from rich.console import Console
from rich.table import Table

from ..config import MLWorkshopConfig, load_config
from ..hub.classes import Schedule, ScheduleError, bell_at, utcnow
from ..site import Site, resolve_site
from .handles import hub_api

if TYPE_CHECKING:  # only for annotations: handles.hub_api imports it when a command asks
    from .hubapi import HubAPI

class_app = typer.Typer(
    help="Start a class's servers before the bell (pre-warm), stop them, see the schedule.",
    no_args_is_help=True,
)
out = Console(soft_wrap=True)

SiteOpt = Annotated[Path | None, typer.Option("--site", help="Site folder.")]


class Failure(RuntimeError):
    """A message for the admin (cli/main.py prints it; exit status 2)."""


def _hub(site: Path | None) -> tuple[Site, MLWorkshopConfig, HubAPI]:
    s = resolve_site(site)
    if not s.config_file.exists():
        raise Failure(
            f"No site at {s.root} (no {s.config_file.name}). Create it with `mlworkshop init --site {s.root}`."
        )
    cfg = load_config(s.root)
    api = hub_api(s, cfg)
    if not api.running():
        raise Failure(
            f"The hub at {s.root} is not running: classes are started by the hub. Start it "
            "with `make up` (or `mlworkshop up`) and run this again."
        )
    return s, cfg, api


def _group(api: HubAPI, name: str) -> dict:
    response = api.client.get(f"{api.url}/groups/{quote(name)}")
    if response.status_code == 404:
        raise Failure(
            f"There is no group {name!r}. Put the class's students in it first, e.g. "
            f"`mlworkshop user import roster.csv` (its group column), or on the hub's Admin page."
        )
    return api._check(response).json()


def _why(response) -> str:
    try:
        return str(response.json().get("message") or response.status_code)
    except ValueError:
        return f"{response.status_code} {response.text[:200]}"


def _set_schedule(api: HubAPI, group: str, properties: dict) -> None:
    api._check(api.client.put(f"{api.url}/groups/{quote(group)}/properties", json=properties))


def _servers(api: HubAPI, names: list[str]) -> dict[str, dict]:
    """name -> its default server's model (absent: no server)."""
    found = {}
    for name in names:
        user = api.user(name) or {}
        server = (user.get("servers") or {}).get("")
        if server:
            found[name] = server
    return found


@class_app.command("start")
def start(
    group: Annotated[str, typer.Argument(help="The JupyterHub group of the class's students.")],
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="The bell, HH:MM today: servers start culler.class_prewarm seconds before it. "
            "Without it the servers start now.",
        ),
    ] = None,
    grace: Annotated[
        int | None,
        typer.Option(
            help="Minutes after the bell that unused servers are kept (default: culler.class_grace)."
        ),
    ] = None,
    site: SiteOpt = None,
) -> None:
    """Pre-warm the servers of GROUP's students, so at the bell logging in is all that is left."""
    _, cfg, api = _hub(site)
    if not cfg.culler.enabled:
        raise Failure(
            "The idle culler is off (culler.enabled: false): it is what starts scheduled classes "
            "and keeps pre-warmed servers. Turn it on: `mlworkshop config set culler.enabled true`, "
            "then restart the hub."
        )
    if grace is not None and grace < 0:
        raise Failure(f"--grace {grace}: give minutes, 0 or more.")
    members = list(_group(api, group).get("users") or [])
    if not members:
        raise Failure(f"Group {group!r} has no members: nothing to start.")
    now = utcnow()
    try:
        bell = bell_at(at, now) if at else now
    except ScheduleError as exc:
        raise Failure(str(exc)) from None
    schedule = Schedule(
        group=group,
        bell=bell,
        prewarm=dt.timedelta(seconds=cfg.culler.class_prewarm if at else 0),
        grace=dt.timedelta(
            seconds=cfg.culler.class_grace if grace is None else grace * 60,
        ),
    )
    _set_schedule(api, group, schedule.to_properties())
    local = schedule.protected_until.astimezone()
    if at:
        out.print(
            f"Class {group}: {len(members)} servers start at "
            f"{schedule.prewarm_at.astimezone():%H:%M} for the bell at {bell.astimezone():%H:%M}; "
            f"unused ones are kept until {local:%H:%M}."
        )
        return
    running = _servers(api, members)
    started = []
    for name in members:
        if name in running:
            continue
        response = api.client.post(f"{api.url}/users/{quote(name)}/server")
        if response.status_code in (201, 202):
            started.append(name)
        else:
            out.print(f"  {name}: not started ({_why(response)})")
    out.print(
        f"Class {group}: started {len(started)} servers, {len(running)} were running; "
        f"unused ones are kept until {local:%H:%M}."
    )


@class_app.command("stop")
def stop(
    group: Annotated[str, typer.Argument(help="The JupyterHub group of the class's students.")],
    site: SiteOpt = None,
) -> None:
    """Stop the servers of GROUP's students and forget the class's schedule (their files stay)."""
    _, _, api = _hub(site)
    members = list(_group(api, group).get("users") or [])
    _set_schedule(api, group, {})
    running = _servers(api, members)
    for name in running:
        response = api.client.delete(f"{api.url}/users/{quote(name)}/server")
        if response.status_code not in (202, 204):
            out.print(f"  {name}: not stopped ({_why(response)})")
    out.print(f"Class {group}: stopping {len(running)} servers; schedule removed.")


@class_app.command("status")
def status(
    group: Annotated[str, typer.Argument(help="The JupyterHub group of the class's students.")],
    site: SiteOpt = None,
) -> None:
    """The class's schedule and each student's server."""
    _, _, api = _hub(site)
    model = _group(api, group)
    schedule = Schedule.from_group(model)
    if schedule is None:
        out.print(f"Class {group}: no schedule (`mlworkshop class start {group}` makes one).")
    else:
        out.print(
            f"Class {group}: servers from {schedule.prewarm_at.astimezone():%H:%M}, bell "
            f"{schedule.bell.astimezone():%H:%M}, unused kept until "
            f"{schedule.protected_until.astimezone():%H:%M}."
        )
    members = list(model.get("users") or [])
    running = _servers(api, members)
    table = Table("student", "server", "started", "last activity")
    for name in members:
        server = running.get(name)
        if server is None:
            table.add_row(name, "-", "", "")
        else:
            table.add_row(
                name,
                "ready" if server.get("ready") else str(server.get("pending") or "starting"),
                str(server.get("started") or ""),
                str(server.get("last_activity") or ""),
            )
    out.print(table)
