"""Checks `mlworkshop config set` makes of a value beyond its type: that a file it names is there.

Not in the model's validators: mlworkshop.yaml is also loaded where the file is not readable (the
usage service's account, a copy of the site on another machine), and a certificate renewed in
place must not make the whole config unloadable. At set time the admin has just typed the path,
so a typo is best caught there, with the key, the value and the fix in one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .model import SELF_SIGNED, MLWorkshopConfig


def _readable_file(key: str, value: str | None) -> str | None:
    """None when `value` is empty, self-signed or a file this process can read; else the problem."""
    if value in (None, "", SELF_SIGNED):
        return None
    path = Path(value)
    fix = f"Fix: copy the file there, or `mlworkshop config set {key} PATH` with its real path."
    if not path.exists():
        return f"{key} = {value!r}: no such file. {fix}"
    if path.is_dir():
        return f"{key} = {value!r}: is a folder, not a PEM file. {fix}"
    if not os.access(path, os.R_OK):
        return (
            f"{key} = {value!r}: cannot be read by {'root' if os.geteuid() == 0 else 'you'} "
            "(permission denied). Fix: run `mlworkshop config set` as the hub's user (root), "
            "or let that user read the file."
        )
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        return f"{key} = {value!r}: cannot be read ({exc.strerror}). {fix}"
    return None


SET_CHECKS: dict[str, Callable[[str, MLWorkshopConfig], str | None]] = {
    "hub.https.cert": lambda key, cfg: _readable_file(key, cfg.hub.https.cert),
    "hub.https.key": lambda key, cfg: _readable_file(key, cfg.hub.https.key),
}


def check_set(key: str, cfg: MLWorkshopConfig) -> str | None:
    """What is wrong with the value just set at `key` (already valid for the model), or None."""
    check = SET_CHECKS.get(key)
    return check(key, cfg) if check else None
