"""`mlworkshop accelerators`: what devices this host has, how they were found, who holds them.

Wire it with `app.command("accelerators")(accelerators)` in cli/main.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..config import load_config
from ..site import resolve_site

out = Console()


def accelerators(
    site: Annotated[
        Path | None,
        typer.Option(
            "--site",
            help="Site folder. Default: $MLWORKSHOP_SITE, else ./site (or /srv/mlworkshop as root).",
        ),
    ] = None,
) -> None:
    """List NVIDIA GPUs and Ascend NPUs: what was found, how, and (exclusive mode) who holds them."""
    from ..accelerators.inventory import detect
    from ..accelerators.report import inventory_table, summary, usage_table  # SQLAlchemy

    s = resolve_site(site)
    cfg = load_config(s.root)
    acc = cfg.accelerators
    inventory = detect(acc)
    out.print(
        f"mode: {acc.mode}"
        + (f", {acc.slots_per_device} server(s) per device" if acc.mode == "exclusive" else "")
    )
    out.print(f"found: {summary(inventory, acc.mode)}")
    out.print("how:")
    for note in inventory.notes:
        out.print(f"  - {note}", highlight=False)
    if inventory.devices:
        out.print(inventory_table(inventory))
    if acc.mode == "exclusive" and inventory.devices and s.config_file.exists():
        from ..accelerators.allocator import Allocator

        allocator = Allocator(s.db_url(cfg), inventory.devices, acc.slots_per_device)
        try:
            out.print(usage_table(allocator.usage()))
        finally:
            allocator.close()
