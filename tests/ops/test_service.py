"""ops/service.py and `mlworkshop service`: the unit runs this installation's `mlworkshop up` for
the site, restarts on failure, starts at boot, logs to journald; systemd-analyze verify accepts it
(odd site paths included). This machine has no systemd as PID 1: install writes the unit and says
how to start it; status and uninstall work on the written file."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import pytest

from mlworkshop.ops import service as svc
from mlworkshop.site import Site, init_site

from ..cli.clirun import assert_refused, mlw_here

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian package systemd)",
)


@pytest.fixture
def site(tmp_path) -> Site:
    s = Site(tmp_path / "site")
    init_site(s)
    return s


def _directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def test_unit_runs_this_installations_hub(site):
    text = svc.unit_text(site)
    unit = _directives(text)
    venv_script = Path(sys.executable).parent / "mlworkshop"
    assert unit["ExecStart"] == [f"{venv_script} up --site {site.root}"]
    assert unit["Restart"] == ["on-failure"] and unit["WantedBy"] == ["multi-user.target"]
    assert unit["StandardOutput"] == ["journal"] and unit["SyslogIdentifier"] == ["mlworkshop"]
    assert f"MLWORKSHOP_SITE={site.root}" in unit["Environment"]
    path = next(e for e in unit["Environment"] if e.startswith("PATH="))
    assert path.split("=", 1)[1].split(":")[0] == str(venv_script.parent)
    assert text.startswith(f"{svc.SITE_MARK}{site.root}\n")


@needs_analyze
def test_systemd_analyze_verifies_the_unit(site, tmp_path):
    unit = tmp_path / "units" / svc.UNIT_NAME
    unit.parent.mkdir()
    unit.write_text(svc.unit_text(site))
    assert svc.verify(unit) is None


@needs_analyze
def test_odd_site_paths_are_quoted_for_systemd(tmp_path):
    site = Site(tmp_path / 'my course 100% $HOME "x"')
    init_site(site)
    unit = tmp_path / svc.UNIT_NAME
    unit.write_text(svc.unit_text(site))
    assert svc.verify(unit) is None
    exec_start = _directives(unit.read_text())["ExecStart"][0]
    # systemd's own reading of the line: % and $ doubled, then shell-like quotes
    args = shlex.split(exec_start.replace("%%", "%").replace("$$", "$"))
    assert args[1:] == ["up", "--site", str(site.root)]


@needs_analyze
def test_verify_catches_a_broken_unit(tmp_path):
    unit = tmp_path / svc.UNIT_NAME
    unit.write_text("[Service]\nExecStart=relative/mlworkshop up\nRestart=sometimes\n")
    problem = svc.verify(unit)
    assert problem and "valid executable name" in problem


def test_install_status_uninstall_without_systemd(site, tmp_path):
    units = tmp_path / "units"
    units.mkdir()
    shown = mlw_here(None, "service", "status", "--unit-dir", str(units))
    assert "not installed" in shown.stdout, shown

    done = mlw_here(site.root, "service", "install", "--unit-dir", str(units))
    assert done.returncode == 0, done
    assert f"wrote {units / svc.UNIT_NAME}" in done.stdout
    assert (
        "systemd is not running on this machine" in done.stdout
        and "systemctl enable --now mlworkshop" in done.stdout
    )
    assert (units / svc.UNIT_NAME).stat().st_mode & 0o777 == 0o644

    shown = mlw_here(None, "service", "status", "--unit-dir", str(units))
    assert f"site:    {site.root}" in shown.stdout and "systemd: not running" in shown.stdout, shown

    # installed again for the same site: rewritten; for another site: refused with the fix
    assert mlw_here(site.root, "service", "install", "--unit-dir", str(units)).returncode == 0
    other = Site(tmp_path / "other")
    init_site(other)
    assert_refused(
        mlw_here(other.root, "service", "install", "--unit-dir", str(units)),
        f"already runs the site {site.root}",
        "mlworkshop service uninstall",
    )

    gone = mlw_here(None, "service", "uninstall", "--unit-dir", str(units))
    assert gone.returncode == 0 and f"removed {units / svc.UNIT_NAME}" in gone.stdout, gone
    assert not (units / svc.UNIT_NAME).exists()
    assert (
        "nothing to remove"
        in mlw_here(None, "service", "uninstall", "--unit-dir", str(units)).stdout
    )


def test_install_needs_a_site(tmp_path):
    units = tmp_path / "units"
    units.mkdir()
    assert_refused(
        mlw_here(tmp_path / "nothing", "service", "install", "--unit-dir", str(units)),
        "No site at",
        "mlworkshop init",
    )
    assert not (units / svc.UNIT_NAME).exists()
