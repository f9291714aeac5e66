"""`mlworkshop usage report` on the hand-computed fixture (SQLite and PostgreSQL)."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from mlworkshop.cli.usage_cmd import usage_app
from mlworkshop.usage.store import UsageStore

from .conftest import load_fixture


def _site(
    tmp_path,
    db_url: str,
    rates: str = "{cpu_hour: 0.1, mem_gib_hour: 0.01, gpu_hour: 2, npu_hour: 1.5}",
):
    (tmp_path / "state").mkdir(exist_ok=True)
    (tmp_path / "mlworkshop.yaml").write_text(
        f"usage:\n  db_url: {db_url}\n  rates: {rates}\n", encoding="utf-8"
    )
    store = UsageStore(db_url)
    load_fixture(store)
    store.close()
    return tmp_path


def _app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(usage_app, name="usage")
    app.command("noop")(lambda: None)
    return app


def test_report_csv_by_user(tmp_path, db_url):
    site = _site(tmp_path, db_url)
    result = CliRunner().invoke(
        _app(),
        [
            "usage",
            "report",
            "--from",
            "2026-03-02",
            "--to",
            "2026-03-04",
            "--by",
            "user",
            "--csv",
            "--site",
            str(site),
        ],
    )
    assert result.exit_code == 0, result.output
    # bob's NPU session is still open; the window ends before "now", so it counts to the window's end
    assert result.output.splitlines() == [
        "user,sessions,cpu_hours,mem_gib_hours,gpu_hours,npu_hours,cost_EUR",
        "alice,2,1.0500,3.7500,2.5000,0.0000,5.14",
        "bob,1,1.0000,4.0000,0.0000,4.0000,6.14",
        "carol,1,0.5000,1.0000,1.0000,0.0000,2.06",
    ]


def test_report_table_by_day_and_bad_input(tmp_path, db_url, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    site = _site(tmp_path, db_url)
    result = CliRunner().invoke(
        _app(),
        [
            "usage",
            "report",
            "--from",
            "2026-03-02",
            "--to",
            "2026-03-04",
            "--by",
            "day",
            "--site",
            str(site),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2026-03-02" in result.output and "7.18" in result.output and "6.17" in result.output
    assert "total" in result.output and "13.34" in result.output
    bad = CliRunner().invoke(
        _app(), ["usage", "report", "--from", "yesterday", "--site", str(site)]
    )
    assert bad.exit_code != 0 and "not a date" in bad.output
    bad = CliRunner().invoke(
        _app(), ["usage", "report", "--from", "2026-03-02", "--by", "week", "--site", str(site)]
    )
    assert bad.exit_code != 0 and "user, group or day" in bad.output
