"""Scheduled backups as a systemd timer: `mlworkshop backup --scheduled` at backup.schedule.

A timer rather than a loop inside the hub: the backup must run as root (it reads every home),
keeps running when the hub is stopped or restarting, and systemd catches up on a run missed while
the machine was off (Persistent=true). The unit names carry a hash of the site's path, so two
sites on one machine get two timers.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from ..config import MLWorkshopConfig
from ..site import Site

UNIT_DIR = Path("/etc/systemd/system")


def unit_name(site: Site) -> str:
    return "mlworkshop-backup-" + hashlib.sha256(str(site.root).encode()).hexdigest()[:8]


def timer_units(site: Site, cfg: MLWorkshopConfig, python: str = sys.executable) -> dict[str, str]:
    """The .service and .timer files (name -> text) for the site's backup.schedule."""
    if not cfg.backup.schedule:
        raise ValueError("backup.schedule is empty")
    name = unit_name(site)
    service = (
        "[Unit]\n"
        f"Description=mlworkshop scheduled backup of {site.root}\n"
        "After=network-online.target\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"ExecStart={python} -m mlworkshop.cli.main backup --scheduled --site {site.root}\n"
        f"Nice={cfg.backup.nice}\n"
        "IOSchedulingClass=best-effort\nIOSchedulingPriority=7\n"
    )
    timer = (
        "[Unit]\n"
        f"Description=mlworkshop scheduled backup of {site.root} ({cfg.backup.schedule})\n\n"
        "[Timer]\n"
        f"OnCalendar={cfg.backup.schedule}\n"
        "Persistent=true\n"
        "RandomizedDelaySec=60\n\n"
        "[Install]\nWantedBy=timers.target\n"
    )
    return {f"{name}.service": service, f"{name}.timer": timer}


def check_schedule(expression: str) -> str | None:
    """What systemd says is wrong with an OnCalendar expression; None if fine or unknowable here."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return None
    result = subprocess.run([analyze, "calendar", expression], capture_output=True, text=True)
    return (
        None if result.returncode == 0 else (result.stderr.strip() or "not a calendar expression")
    )


def install_timer(site: Site, cfg: MLWorkshopConfig, unit_dir: Path = UNIT_DIR) -> list[str]:
    """Write the units and, where systemd runs, enable the timer. Returns what it did."""
    problem = check_schedule(cfg.backup.schedule or "")
    if problem:
        raise ValueError(f"backup.schedule {cfg.backup.schedule!r}: {problem}")
    done = []
    for filename, text in timer_units(site, cfg).items():
        path = unit_dir / filename
        path.write_text(text)
        path.chmod(0o644)
        done.append(f"wrote {path}")
    systemctl = shutil.which("systemctl")
    if systemctl and Path("/run/systemd/system").is_dir():
        subprocess.run([systemctl, "daemon-reload"], check=True, capture_output=True)
        subprocess.run(
            [systemctl, "enable", "--now", f"{unit_name(site)}.timer"],
            check=True,
            capture_output=True,
        )
        done.append(f"enabled {unit_name(site)}.timer")
    else:
        done.append(
            f"systemd is not running here: enable it with `systemctl enable --now {unit_name(site)}.timer`"
        )
    return done
