"""The inventory (and, in exclusive mode, who holds what) as rich tables for the CLI and doctor."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from .allocator import DeviceUsage, since_text
from .inventory import Inventory


def inventory_table(inventory: Inventory) -> Table:
    table = Table("device", "kind", "name", "memory", "uuid", "found by", title="Accelerators")
    for d in inventory.devices:
        memory = f"{d.memory_mib / 1024:.0f} GiB" if d.memory_mib else ""
        table.add_row(d.label, d.kind, d.name or "", memory, d.uuid or "", d.source)
    return table


def usage_table(usage: Sequence[DeviceUsage]) -> Table:
    table = Table("device", "slots used", "held by", title="Allocations (exclusive mode)")
    for u in usage:
        holders = ", ".join(f"{h.who} since {since_text(h.taken_at)}" for h in u.holders) or "free"
        table.add_row(u.device.label, f"{len(u.holders)}/{u.slots}", holders)
    return table


def summary(inventory: Inventory, mode: str) -> str:
    """One line for `mlworkshop status` / doctor."""
    if not inventory.devices:
        return "no accelerators found"
    counts = ", ".join(
        f"{len(inventory.of_kind(k))} × {'GPU' if k == 'nvidia' else 'NPU'}"
        for k in inventory.kinds
    )
    return f"{counts} ({mode} mode)"
