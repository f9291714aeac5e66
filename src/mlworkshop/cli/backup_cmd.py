"""`mlworkshop backup` and `mlworkshop restore` (ops/backup.py, ops/restore.py do the work)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ..config import load_config
from ..site import resolve_site

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

SiteOpt = Annotated[
    Path | None,
    typer.Option(
        "--site",
        help="Site folder. Default: $MLWORKSHOP_SITE, else ./site (or /srv/mlworkshop as root).",
    ),
]


@contextmanager
def _progress(what: str):
    """A bar with bytes, bytes/s and time left, on stderr (plain lines when it is not a terminal)."""
    bar = Progress(
        TextColumn(what),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    )
    task = bar.add_task(what, total=None)
    with bar:
        yield (lambda total: bar.update(task, total=total)), (lambda n: bar.advance(task, n))


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return str(n)


def backup(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="Archive to write (never overwritten). Default: backup.dir/mlworkshop-<host>-<UTC time>.tar.gz."
        ),
    ] = None,
    no_homes: Annotated[
        bool, typer.Option("--no-homes", help="Leave users' homes (users/) out.")
    ] = False,
    verify: Annotated[
        Path | None,
        typer.Option(
            "--verify",
            help="Check an archive (every checksum, the whole stream) and write nothing.",
        ),
    ] = None,
    scheduled: Annotated[
        bool,
        typer.Option(
            "--scheduled",
            help="A scheduled run: into backup.dir (backup.homes), then keep the newest backup.keep.",
        ),
    ] = False,
    install_timer: Annotated[
        bool,
        typer.Option(
            "--install-timer",
            help="Install the systemd timer that runs --scheduled at backup.schedule.",
        ),
    ] = False,
    site: SiteOpt = None,
) -> None:
    """Back up the whole site while the hub runs: databases, config, secrets, content, submissions, homes."""
    from ..ops.archive import ArchiveError
    from ..ops.backup import create_backup, default_backup_path, lower_priority, prune
    from ..ops.restore import verify_archive

    if verify is not None:
        if not verify.is_file():
            raise RuntimeError(f"No backup at {verify}.")
        with _progress("verifying") as (total, advance):
            total(verify.stat().st_size)
            try:
                contents = verify_archive(verify, advance)
            except ArchiveError as exc:
                raise RuntimeError(f"{verify} is not a good backup: {exc}.") from None
        meta = contents.meta
        out.print(
            f"{verify}: good. Backup of {meta.get('site')} on {meta.get('host')} at {meta.get('created')}: "
            f"{contents.files} files, {_size(contents.bytes)}, every checksum matches.",
            highlight=False,
        )
        return
    s = resolve_site(site)
    if not s.config_file.exists():
        raise RuntimeError(f"No site at {s.root} (no {s.config_file.name}).")
    cfg = load_config(s.root)
    if install_timer:
        from ..ops.schedule import install_timer as install

        if not cfg.backup.schedule:
            raise RuntimeError(
                "backup.schedule is empty: set it first, e.g. "
                f"`mlworkshop config set backup.schedule daily --site {s.root}`."
            )
        try:
            done = install(s, cfg)
        except ValueError as exc:
            raise RuntimeError(str(exc)) from None
        for line in done:
            out.print(f"  {line}", highlight=False)
        return
    if os.geteuid() != 0 and not no_homes:
        err.print(
            "[yellow]Not root: homes that are not yours cannot be read; run as root, or add --no-homes.[/]"
        )
    homes = cfg.backup.homes if scheduled else not no_homes
    target = default_backup_path(s, cfg) if (file is None or scheduled) else file
    lower_priority(cfg.backup.nice)
    with _progress("backing up") as (total, advance):
        result = create_backup(s, cfg, target, homes=homes, progress_total=total, progress=advance)
    os.chmod(result.path, 0o600)
    rate = result.bytes_in / result.seconds if result.seconds else 0
    out.print(
        f"Wrote {result.path} (0600): {result.files} files, {result.folders} folders, {result.links} links, "
        f"{_size(result.bytes_in)} read, {_size(result.bytes_out)} written, in {result.seconds:.1f} s "
        f"({_size(rate)}/s).",
        highlight=False,
    )
    for what in result.changed:
        err.print(
            f"[yellow]changed while read (archived as it was when the backup reached it):[/] {what}",
            highlight=False,
        )
    if result.skipped:
        err.print(
            f"[yellow]left out {len(result.skipped)}:[/] " + "; ".join(result.skipped[:10]),
            highlight=False,
        )
    if scheduled:
        for old in prune(result.path.parent, cfg.backup.keep):
            out.print(
                f"Removed the old backup {old} (backup.keep = {cfg.backup.keep}).", highlight=False
            )


def restore(
    file: Annotated[Path, typer.Argument(help="The backup archive.")],
    site: Annotated[
        Path, typer.Option("--site", help="Folder to restore into: new or empty (or --force).")
    ],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Restore into a folder that is not empty (its contents are moved aside, not deleted).",
        ),
    ] = False,
    db_url: Annotated[
        str | None,
        typer.Option(
            "--db-url",
            help="An empty PostgreSQL database for the hub (default: the backup's hub.db_url).",
        ),
    ] = None,
    usage_db_url: Annotated[
        str | None,
        typer.Option(
            "--usage-db-url",
            help="An empty PostgreSQL database for usage records (default: the backup's usage.db_url).",
        ),
    ] = None,
) -> None:
    """Restore a backup onto a new site or machine: every checksum verified first, accounts made by name."""
    from ..ops.archive import ArchiveError
    from ..ops.restore import restore_site

    s = resolve_site(site)
    if not file.is_file():
        raise RuntimeError(f"No backup at {file}.")
    with _progress("restoring") as (total, advance):
        total(file.stat().st_size)
        try:
            result = restore_site(
                file, s, force=force, db_url=db_url, usage_db_url=usage_db_url, progress=advance
            )
        except ArchiveError as exc:
            raise RuntimeError(
                f"{file} is not a good backup: {exc}. Nothing was restored."
            ) from None
    meta = result.contents.meta
    out.print(
        f"Restored the backup of {meta.get('site')} ({meta.get('host')}, {meta.get('created')}) into {s.root}: "
        f"{result.contents.files} files, {_size(result.contents.bytes)}, every checksum verified, "
        f"in {result.seconds:.1f} s.",
        highlight=False,
    )
    for note in result.notes:
        out.print(f"  {note}", highlight=False)
    out.print(
        f"Start it with `mlworkshop up --site {s.root}` (check hub.port first if the old hub still runs here).",
        highlight=False,
    )
