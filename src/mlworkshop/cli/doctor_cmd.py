"""`mlworkshop doctor [--fix] [--json] [--watch]`: thin; the checks are ops/doctor/'s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..site import resolve_site

SiteOpt = Annotated[
    Path | None,
    typer.Option(
        "--site",
        help="Site folder. Default: $MLWORKSHOP_SITE, else ./site (or /srv/mlworkshop as root).",
    ),
]

out = Console(soft_wrap=True, highlight=False)
MARK = {"ok": "[green]ok   [/]", "warn": "[yellow]WARN [/]", "error": "[red]ERROR[/]"}


def doctor(
    fix: Annotated[
        bool, typer.Option("--fix", help="Repair what is safe, then look again.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Run on a schedule (doctor.watch_every), repairing when doctor.fix, logging to "
            "<site>/logs/doctor.log. The hub runs this as a service; by hand it runs until Ctrl-C.",
        ),
    ] = False,
    every: Annotated[
        float | None,
        typer.Option(help="With --watch: seconds between runs (default doctor.watch_every)."),
    ] = None,
    site: SiteOpt = None,
) -> None:
    """Is everything healthy? Each finding says what it means and the command that fixes it.
    Exit status 1 while an error remains."""
    from ..config import load_config
    from ..ops.doctor import run_doctor, worst
    from ..ops.doctor.watch import watch as watch_loop

    s = resolve_site(site)
    if watch:
        cfg = load_config(s.root)
        interval = every or cfg.doctor.watch_every or 300
        watch_loop(s, interval, fix or cfg.doctor.fix)
        return
    report = run_doctor(s, fix=fix)
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for repair in report.repairs:
            if "done" in repair:
                out.print(f"[green]fixed[/] {repair['id']}: {repair['done']}", markup=True)
            else:
                out.print(f"[red]could not fix[/] {repair['id']}: {repair['failed']}")
        for finding in report.findings:
            out.print(f"{MARK[finding.severity]} {finding.id}: ", end="")
            out.print(finding.message, markup=False)
            if finding.severity != "ok" and finding.fix:
                out.print("       fix: ", end="")
                out.print(
                    finding.fix + (" [fixable by --fix]" if finding.fixable else ""), markup=False
                )
        status = worst(report.findings)
        out.print(
            f"doctor: {status}" + ("" if status == "ok" else f" ({len(report.errors)} error(s))")
        )
    if report.errors:
        raise typer.Exit(1)
