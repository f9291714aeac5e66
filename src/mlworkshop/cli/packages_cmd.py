"""`mlworkshop packages add | install | list`: wheels for the students' package index, and the
shared packages every server sees (hub/packages.py, hub/package_index.py).

Wire it with `app.add_typer(packages_app, name="packages")` in cli/main.py.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer

from ..config import load_config
from ..hub import packages as pk
from ..hub.package_index import INDEX, PackageIndexError, package_files, upload
from ..site import resolve_site

packages_app = typer.Typer(
    help="Packages for students: the local package index and the shared packages folder.",
    no_args_is_help=True,
)
SiteOpt = Annotated[
    Path | None,
    typer.Option(
        "--site",
        help="Site folder. Default: $MLWORKSHOP_SITE, else ./site (or /srv/mlworkshop as root).",
    ),
]


def _loaded(site: Path | None):
    s = resolve_site(site)
    if not s.config_file.exists():
        raise PackageIndexError(
            f"No site at {s.root}. Create it with `mlworkshop init --site {s.root}`."
        )
    return s, load_config(s.root)


def _index_answers(base: str, wait: float = 0) -> bool:
    """Whether the index answers with its root/local index made, waiting up to `wait` s (with the
    hub it takes a few seconds to start, and then to make root/local)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            ready = httpx.get(f"{base}/{INDEX}", headers={"Accept": "application/json"}, timeout=5)
            if ready.status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


@packages_app.command("add")
def add(
    paths: Annotated[list[Path], typer.Argument(help="Wheels, sdists, or folders of them.")],
    site: SiteOpt = None,
) -> None:
    """Put wheels into the local package index (packages.index: local; the hub must be running)."""
    s, cfg = _loaded(site)
    if cfg.packages.index != "local":
        raise PackageIndexError(
            "packages.index is not local: there is no package index to add to. "
            "`mlworkshop config set packages.index local`, then restart the hub."
        )
    files = package_files(paths)
    if not files:
        raise PackageIndexError(f"No wheel or sdist in {', '.join(map(str, paths))}.")
    base = pk.index_base(cfg)
    if not _index_answers(base, wait=90):
        raise PackageIndexError(
            f"The package index does not answer at {base}: start the hub (`mlworkshop up`), "
            "which runs it, then add the packages again."
        )
    done, had = upload(base, s.read_secret(pk.SECRET), files, say=typer.echo)
    typer.echo(f"{done} added, {had} already in the index ({pk.index_url(cfg)})")


@packages_app.command("install")
def install(
    requirements: Annotated[
        list[str], typer.Argument(help="Packages, as for pip: NAME, NAME==VERSION, a wheel file.")
    ],
    site: SiteOpt = None,
) -> None:
    """Install packages every student's server sees (root only; students cannot change them)."""
    s, cfg = _loaded(site)
    if os.geteuid() != 0 and os.stat(s.root).st_uid != os.geteuid():
        raise PackageIndexError(
            "Shared packages are root's: run `sudo mlworkshop packages install`."
        )
    index = None
    if cfg.packages.index == "local" and _index_answers(pk.index_base(cfg)):
        index = pk.index_url(cfg)
    last = pk.install_shared(s, cfg, list(requirements), index)
    typer.echo(last)
    typer.echo(
        f"in {pk.shared_site_packages(s)}: servers started from now on see it "
        "(running servers: after a restart of their kernel)"
    )


@packages_app.command("list")
def list_packages(site: SiteOpt = None) -> None:
    """The shared packages, and where students' pip gets packages from."""
    import importlib.metadata

    s, cfg = _loaded(site)
    folder = pk.shared_site_packages(s)
    dists = (
        sorted(importlib.metadata.distributions(path=[str(folder)]), key=lambda d: d.name.lower())
        if folder.is_dir()
        else []
    )
    typer.echo(f"shared packages ({folder}): {len(dists)}")
    for dist in dists:
        typer.echo(f"  {dist.metadata['Name']} {dist.version}")
    if cfg.packages.index == "local":
        state = "answers" if _index_answers(pk.index_base(cfg)) else "not running"
        typer.echo(f"students' index: {pk.index_url(cfg)} ({state})")
    else:
        typer.echo("students' index: pip's default (packages.index: pypi)")
    typer.echo(
        "students' own installs: "
        + ("their home (~/.local)" if cfg.packages.user_installs else "off")
    )
