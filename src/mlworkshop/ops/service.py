"""The hub as a systemd service: /etc/systemd/system/mlworkshop.service runs `mlworkshop up
--site SITE` from this installation, at boot and again when it fails.

What the unit says, and why:
- ExecStart is the `mlworkshop` script beside this interpreter (the venv's), so the unit runs the
  installation that wrote it, whatever PATH says; PATH holds the venv and where `node` was found,
  because configurable-http-proxy starts through `#!/usr/bin/env node`.
- Restart=on-failure with a start limit: a hub that dies is started again after 5 s, but a config
  error (exit status 2) does not spin forever: after 5 failed starts in 5 minutes systemd stops
  trying and `systemctl status mlworkshop` shows the message.
- Output goes to journald (`journalctl -u mlworkshop`); `mlworkshop up` itself also appends it to
  <site>/logs/hub.log (hub/hublog.py), so `mlworkshop logs hub` shows the same lines.
  (StandardOutput=append: would send it to the file *instead of* the journal.)
- Stopping (the default KillMode=control-group) sends SIGTERM to what runs in the unit's group:
  JupyterHub stops its proxy and services, the log tee drains and exits. Students' servers live in
  cgroups of their own (mlworkshop.cgroups) and keep running, as with Ctrl-C.

One unit per machine (the name the docs and the admin type); `install` refuses to point it at a
second site. Where systemd is not PID 1 (a container, this test machine) the unit is written and
the admin is told how to start it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..site import Site

UNIT_NAME = "mlworkshop.service"
UNIT_DIR = Path("/etc/systemd/system")
SITE_MARK = "# mlworkshop site: "
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ServiceError(RuntimeError):
    """str() says what went wrong and what to do (the CLI prints it)."""


def mlworkshop_command(python: str = sys.executable) -> list[str]:
    """This installation's `mlworkshop`: the venv's script beside its python (not resolved: the
    venv's python is a link to the system's, and only the link's folder is the venv)."""
    script = Path(python).parent / "mlworkshop"
    return (
        [str(script)]
        if script.is_file() and os.access(script, os.X_OK)
        else [python, "-m", "mlworkshop.cli.main"]
    )


def _quote(arg: str) -> str:
    """One ExecStart argument as systemd reads it: specifiers (%) and variables ($) kept literal,
    quoted when it holds spaces or quotes."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if any(ch.isspace() or ch in "\"'\\;" for ch in arg):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def _search_path(python: str) -> str:
    folders = [str(Path(python).parent)]
    node = shutil.which("node")
    if node:
        folders.append(str(Path(node).parent))
    for folder in STANDARD_PATH.split(":"):
        if folder not in folders:
            folders.append(folder)
    return ":".join(folders)


def unit_text(site: Site, python: str = sys.executable) -> str:
    command = [*mlworkshop_command(python), "up", "--site", str(site.root)]
    env = [f"MLWORKSHOP_SITE={site.root}", f"PATH={_search_path(python)}"]
    return (
        f"{SITE_MARK}{site.root}\n"
        "# Written by `mlworkshop service install`; remove with `mlworkshop service uninstall`.\n"
        "[Unit]\n"
        f"Description=mlworkshop hub (site {site.root})\n"
        "Wants=network-online.target\n"
        "After=network-online.target postgresql.service\n"
        "StartLimitIntervalSec=300\n"
        "StartLimitBurst=5\n"
        "\n[Service]\n"
        "Type=simple\n"
        f"ExecStart={' '.join(_quote(a) for a in command)}\n"
        + "".join(f"Environment={_quote(e)}\n" for e in env)
        + "WorkingDirectory=/\n"
        "Restart=on-failure\n"
        "RestartSec=5\n"
        "StandardOutput=journal\n"
        "StandardError=journal\n"
        "SyslogIdentifier=mlworkshop\n"
        "TimeoutStopSec=60\n"
        "LimitNOFILE=65536\n"
        "\n[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def systemd_running() -> bool:
    """systemd is PID 1 here (what sd_booted() checks)."""
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def _pid1() -> str:
    try:
        return Path("/proc/1/comm").read_text().strip()
    except OSError:
        return "unknown"


def verify(path: Path) -> str | None:
    """What `systemd-analyze verify` finds wrong with a unit file; None if fine or not checkable."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return None
    result = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, cwd="/")
    text = (result.stderr + result.stdout).strip()
    return text if result.returncode != 0 else None


def installed_site(unit_dir: Path = UNIT_DIR) -> Path | None:
    """The site an installed unit runs (from its first line), or None when there is no unit."""
    path = unit_dir / UNIT_NAME
    try:
        first = path.read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return Path(first[len(SITE_MARK) :]) if first.startswith(SITE_MARK) else Path("?")


def _systemctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["systemctl", *args], capture_output=True, text=True)


def install(
    site: Site, unit_dir: Path = UNIT_DIR, python: str = sys.executable, start: bool | None = None
) -> list[str]:
    """Write (or rewrite) the unit for `site`, check it, and where systemd runs enable and start
    it. Returns what was done; ServiceError with the fix."""
    if not site.config_file.exists():
        raise ServiceError(
            f"No site at {site.root}. Create it with `mlworkshop init --site {site.root}` first."
        )
    current = installed_site(unit_dir)
    if current is not None and current != site.root:
        raise ServiceError(
            f"{unit_dir / UNIT_NAME} already runs the site {current}. Remove it first "
            "(`mlworkshop service uninstall`) to run this one instead."
        )
    text = unit_text(site, python)
    with tempfile.TemporaryDirectory() as scratch:  # verify wants the unit under its own name
        (Path(scratch) / UNIT_NAME).write_text(text)
        problem = verify(Path(scratch) / UNIT_NAME)
    if problem:
        raise ServiceError(f"systemd-analyze verify refuses the unit for {site.root}:\n{problem}")
    path = unit_dir / UNIT_NAME
    tmp = path.with_name(f".{UNIT_NAME}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)  # whatever the umask: systemd and `systemctl cat` read it
    os.replace(tmp, path)
    done = [f"wrote {path}"]
    start = systemd_running() if start is None else start
    if not start:
        done.append(
            f"systemd is not running on this machine (PID 1 is {_pid1()}), so the unit is not started. "
            "On a machine booted with systemd: `systemctl daemon-reload && systemctl enable --now mlworkshop`. "
            f"Here, run the hub with `mlworkshop up --site {site.root}`."
        )
        return done
    for args in (("daemon-reload",), ("enable", "--now", UNIT_NAME)):
        result = _systemctl(*args)
        if result.returncode != 0:
            raise ServiceError(
                f"`systemctl {' '.join(args)}` failed: {result.stderr.strip()}. "
                "See `journalctl -u mlworkshop`."
            )
    done.append(
        "enabled and started mlworkshop.service (at boot too); its output: `journalctl -u mlworkshop -f` "
        "or `mlworkshop logs hub --follow`"
    )
    return done


def uninstall(unit_dir: Path = UNIT_DIR, stop: bool | None = None) -> list[str]:
    path = unit_dir / UNIT_NAME
    if not path.exists():
        return [f"no {path}: nothing to remove"]
    stop = systemd_running() if stop is None else stop
    done = []
    if stop:
        result = _systemctl("disable", "--now", UNIT_NAME)
        if result.returncode != 0:
            raise ServiceError(
                f"`systemctl disable --now {UNIT_NAME}` failed: {result.stderr.strip()}"
            )
        done.append("stopped and disabled mlworkshop.service (students' servers keep running)")
    path.unlink()
    done.append(f"removed {path}")
    if stop:
        _systemctl("daemon-reload")
    return done


@dataclass
class ServiceStatus:
    unit: Path
    site: Path | None
    systemd: bool
    enabled: str = ""
    active: str = ""

    def lines(self) -> list[str]:
        if self.site is None:
            return [f"unit:    not installed (`mlworkshop service install` writes {self.unit})"]
        lines = [f"unit:    {self.unit}", f"site:    {self.site}"]
        if not self.systemd:
            lines.append(
                f"systemd: not running on this machine (PID 1 is {_pid1()}): the unit is not in use"
            )
        else:
            lines += [
                f"enabled: {self.enabled}",
                f"active:  {self.active}",
                "logs:    journalctl -u mlworkshop, or mlworkshop logs hub",
            ]
        return lines


def status(unit_dir: Path = UNIT_DIR) -> ServiceStatus:
    state = ServiceStatus(unit_dir / UNIT_NAME, installed_site(unit_dir), systemd_running())
    if state.site is not None and state.systemd:
        state.enabled = _systemctl("is-enabled", UNIT_NAME).stdout.strip() or "unknown"
        state.active = _systemctl("is-active", UNIT_NAME).stdout.strip() or "unknown"
    return state
