"""`mlworkshop usage`: reports from the usage store (works whether or not the hub runs).

Wire it with `app.add_typer(usage_app, name="usage")` in cli/main.py.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..config import load_config
from ..site import resolve_site

usage_app = typer.Typer(
    help="Usage accounting: reports of CPU, memory and GPU/NPU use and cost.", no_args_is_help=True
)
out = Console(soft_wrap=True)

SiteOpt = Annotated[
    Path | None,
    typer.Option(
        "--site",
        help="Site folder. Default: $MLWORKSHOP_SITE, else ./site (or /srv/mlworkshop as root).",
    ),
]


def _date(text: str, option: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a date such as 2026-03-01 or 2026-03-01T08:00", param_hint=option
        ) from None
    if value.tzinfo is not None:
        try:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError:
            raise typer.BadParameter(f"{text!r} is out of range", param_hint=option) from None
    return value


@usage_app.command("report")
def report_cmd(
    start: Annotated[str, typer.Option("--from", help="Start date/time (UTC), e.g. 2026-03-01.")],
    end: Annotated[
        str | None, typer.Option("--to", help="End (exclusive, UTC). Default: now.")
    ] = None,
    by: Annotated[str, typer.Option("--by", help="user, group or day.")] = "user",
    as_csv: Annotated[
        bool, typer.Option("--csv", help="CSV on standard output instead of a table.")
    ] = False,
    site: SiteOpt = None,
) -> None:
    """CPU-hours, memory GiB-hours, GPU/NPU device-hours and cost between two dates."""
    if by not in ("user", "group", "day"):
        raise typer.BadParameter("must be user, group or day", param_hint="--by")
    s = resolve_site(site)
    cfg = load_config(s.root)
    lo = _date(start, "--from")
    hi = _date(end, "--to") if end else dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if lo >= hi:
        raise typer.BadParameter("--from must be before --to", param_hint="--from")
    from ..usage.reports import Rates, report, to_csv, totals
    from ..usage.store import UsageStore

    try:
        store = UsageStore(s.usage_db_url(cfg))
    except Exception as exc:  # noqa: BLE001 - a message, never a traceback
        raise RuntimeError(
            f"The usage database cannot be opened ({type(exc).__name__}: {exc})."
        ) from None
    try:
        rates = Rates.of(cfg.usage.rates)
        rows = report(store, lo, hi, by, rates)  # type: ignore[arg-type]
    finally:
        store.close()
    if as_csv:
        sys.stdout.write(to_csv(rows, by, rates.currency))
        return
    table = Table(title=f"Usage by {by}, {lo:%Y-%m-%d %H:%M} to {hi:%Y-%m-%d %H:%M} UTC")
    for name, justify in (
        (by, "left"),
        ("sessions", "right"),
        ("CPU-h", "right"),
        ("GiB-h", "right"),
        ("GPU-h", "right"),
        ("NPU-h", "right"),
        (f"cost ({rates.currency})", "right"),
    ):
        table.add_column(name, justify=justify)
    for r in [*rows, totals(rows)]:
        table.add_row(
            r.key,
            str(r.sessions),
            f"{r.cpu_hours:.2f}",
            f"{r.mem_gib_hours:.2f}",
            f"{r.gpu_hours:.2f}",
            f"{r.npu_hours:.2f}",
            f"{r.cost:.2f}",
            end_section=r is rows[-1] if rows else False,
        )
    out.print(table)
