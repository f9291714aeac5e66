"""`mlworkshop accelerators` on a site whose devices come from accelerators.inventory."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from mlworkshop.accelerators.allocator import Allocator
from mlworkshop.accelerators.inventory import Device
from mlworkshop.cli.accelerators_cmd import accelerators


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("accelerators")(accelerators)
    app.command("noop")(lambda: None)  # two commands: keep the sub-command name on the line
    return app


def test_lists_devices_how_and_who(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    (tmp_path / "state").mkdir()
    (tmp_path / "mlworkshop.yaml").write_text(
        "accelerators:\n  mode: exclusive\n  inventory:\n"
        "    - {kind: nvidia, index: 0, name: Tesla T4, memory_mib: 15360}\n"
        "    - {kind: nvidia, index: 1, name: Tesla T4, memory_mib: 15360}\n",
        encoding="utf-8",
    )
    held = Allocator(
        f"sqlite:///{tmp_path / 'state' / 'jupyterhub.sqlite'}",
        [Device("nvidia", 0), Device("nvidia", 1)],
    )
    held.allocate("alice", "", "nvidia", 1)
    held.close()
    result = CliRunner().invoke(_app(), ["accelerators", "--site", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "found: 2 × GPU (exclusive mode)" in result.output
    assert "config: 2 device(s) from accelerators.inventory (detection skipped)" in result.output
    assert "Tesla T4" in result.output and "15 GiB" in result.output
    assert "alice since" in result.output and "free" in result.output


def test_nothing_found_says_how_it_looked(tmp_path):
    (tmp_path / "mlworkshop.yaml").write_text("accelerators:\n  detect: false\n", encoding="utf-8")
    result = CliRunner().invoke(_app(), ["accelerators", "--site", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (
        "no accelerators found" in result.output and "accelerators.detect is false" in result.output
    )
