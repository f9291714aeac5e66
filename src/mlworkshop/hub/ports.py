"""Which of the hub's ports a student account could bind while the hub is stopped.

Servers survive hub restarts and check every token by asking the hub's API on 127.0.0.1; the hub
asks the proxy's API with its token. Whoever holds those ports while the hub is down is believed:
a student who binds the hub's API port accepts made-up tokens for every running server (and, the
proxy being kept across restarts (hub/kept_proxy.py), receives the sign-ins it forwards), one who
binds the proxy's API port collects the proxy's token. Linux lets only root bind ports below
`net.ipv4.ip_unprivileged_port_start` (1024 unless an admin lowered it), so a root hub keeps its
loopback ports there (config/model.py: hub.internal_port, hub.proxy_api_port).
"""

from __future__ import annotations

from pathlib import Path

from ..config import MLWorkshopConfig

SYSCTL = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")


def unprivileged_port_start(sysctl: Path = SYSCTL) -> int:
    """The lowest port any account may bind (1024 where the kernel does not say)."""
    try:
        return int(sysctl.read_text().strip())
    except (OSError, ValueError):
        return 1024


def student_bindable(cfg: MLWorkshopConfig, first_unprivileged: int) -> list[tuple[str, int]]:
    """The hub's loopback ports that a student could bind while the hub is stopped."""
    ports = (("hub.internal_port", cfg.hub.api_port), ("hub.proxy_api_port", cfg.hub.proxy_port))
    return [(key, port) for key, port in ports if port >= first_unprivileged]


def warning(cfg: MLWorkshopConfig, first_unprivileged: int) -> str | None:
    """What to tell a lab admin whose root hub has a loopback port students could take over."""
    exposed = student_bindable(cfg, first_unprivileged)
    if not exposed:
        return None
    names = ", ".join(f"{key} {port}" for key, port in exposed)
    fix = (
        "leave hub.internal_port and hub.proxy_api_port empty (881 and 882) or pick ports below "
        f"{first_unprivileged}"
    )
    if first_unprivileged < 1024:
        fix += (
            f", and raise net.ipv4.ip_unprivileged_port_start back to 1024 (it is {first_unprivileged}: "
            "`sysctl net.ipv4.ip_unprivileged_port_start=1024`)"
        )
    return (
        f"{names}: any local account can bind this while the hub is stopped and answer in its "
        f"place (accept made-up tokens for students' servers, and receive the sign-ins, passwords "
        f"included, that the proxy kept across the restart forwards to it). Fix: {fix}."
    )
