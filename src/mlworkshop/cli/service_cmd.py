"""`mlworkshop service install|uninstall|status`: the hub as a systemd service (ops/service.py).

Wire it with `app.add_typer(service_app, name="service")` in cli/main.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ..ops import service as svc
from ..site import resolve_site

service_app = typer.Typer(
    help="Run the hub as a systemd service (at boot, restarted on failure).", no_args_is_help=True
)

SiteOpt = Annotated[
    Path | None,
    typer.Option(
        "--site",
        help="Site folder. Default: $MLWORKSHOP_SITE, else ./site (or /srv/mlworkshop as root).",
    ),
]
UnitDirOpt = Annotated[
    Path, typer.Option("--unit-dir", hidden=True, help="Where unit files go (tests).")
]


def _root(unit_dir: Path) -> None:
    if os.geteuid() != 0 and not os.access(unit_dir, os.W_OK):
        raise svc.ServiceError(
            f"Writing {unit_dir / svc.UNIT_NAME} needs root: run `sudo mlworkshop service ...`."
        )


def _say(lines: list[str]) -> None:
    for line in lines:
        typer.echo(line)


@service_app.command("install")
def install(site: SiteOpt = None, unit_dir: UnitDirOpt = svc.UNIT_DIR) -> None:
    """Write /etc/systemd/system/mlworkshop.service for this site, then enable and start it."""
    _root(unit_dir)
    s = resolve_site(site)
    _say(svc.install(s, unit_dir, start=None if unit_dir == svc.UNIT_DIR else False))


@service_app.command("uninstall")
def uninstall(unit_dir: UnitDirOpt = svc.UNIT_DIR) -> None:
    """Stop and disable the service and remove its unit (students' servers and all data stay)."""
    _root(unit_dir)
    _say(svc.uninstall(unit_dir, stop=None if unit_dir == svc.UNIT_DIR else False))


@service_app.command("status")
def status(unit_dir: UnitDirOpt = svc.UNIT_DIR) -> None:
    """Is the unit installed, for which site, enabled and running."""
    _say(svc.status(unit_dir).lines())
