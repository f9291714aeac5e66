"""How many devices a user may hold at once, and which config key says so.

The source travels with the number so a refusal can name what to change
(`accelerators.max_per_user`, `accelerators.group_limits.<group>`, `accelerators.admins_exempt`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .allocator import Limit


def effective_limit(username: str, groups: Iterable[str], is_admin: bool, cfg: Any) -> Limit:
    """Admins (when exempt): no limit. Else the largest group override the user has, else the
    default. `cfg` is the AcceleratorsConfig (or the whole MLWorkshopConfig)."""
    acc = getattr(cfg, "accelerators", cfg)
    if is_admin and acc.admins_exempt:
        return Limit(None, "accelerators.admins_exempt (admin)")
    overrides = [(acc.group_limits[g], g) for g in sorted(set(groups)) if g in acc.group_limits]
    if overrides:
        value, group = max(overrides, key=lambda pair: pair[0])
        return Limit(value, f"accelerators.group_limits.{group} (group {group})")
    return Limit(acc.max_per_user, "accelerators.max_per_user")
