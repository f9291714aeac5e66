"""Memory sizes as mlworkshop.yaml writes them ("512M", "4G", "1.5G"), read one way everywhere:
the config's validation, the spawn profiles, the cgroup limits and DockerSpawner's mem_limit.

The meaning is JupyterHub's ByteSpecification (jupyterhub/traitlets.py), so a size means the same
here as in any JupyterHub config: units of 1024 (K, M, G, T), decimals allowed ("1.5G" is
1.5 * 1024**3 bytes, rounded down), a bare number is bytes. Input is forgiving where that is
unambiguous ("4g", "4GB", "4GiB" are all 4G); `normalize_size` gives the canonical text, which is
what a ByteSpecification trait accepts as it is.
"""

from __future__ import annotations

import re

UNIT_SUFFIXES = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
SIZE_HINT = "a size such as 512M, 4G or 1.5G (suffix K, M, G or T, in units of 1024)"
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)(?:([KMGT])(?:I?B)?|B)?$")


def _parts(value: str) -> tuple[str, str]:
    match = _SIZE.match(str(value).strip().upper())
    if not match:
        raise ValueError(f"{value!r} is not {SIZE_HINT}")
    return match.group(1), match.group(2) or ""


def normalize_size(value: str | int) -> str:
    """'4g' -> '4G', '512MiB' -> '512M', '100' -> '100'; ValueError (naming the accepted forms)
    for anything else."""
    number, unit = _parts(value)
    return number + unit


def parse_bytes(value: str | int | float | None) -> int | None:
    """'4G' -> 4294967296, '512M' -> 536870912, '1.5G' -> 1610612736, 100 -> 100, None -> None
    (ByteSpecification.validate: numbers are bytes, strings carry a 1024-based unit)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    number, unit = _parts(value)
    return int(float(number) * UNIT_SUFFIXES.get(unit, 1))


def scale_size(value: str | None, factor: int | float) -> str | None:
    """'16G' x 2 -> '32G', '1.5G' x 3 -> '4.5G' (per-device limits grow with the device count)."""
    if value is None:
        return None
    number, unit = _parts(value)
    scaled = f"{float(number) * factor:.6f}".rstrip("0").rstrip(".")  # never '2e+06'
    return scaled + unit
