"""Running the real `mlworkshop doctor` against a site, as an admin would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

MLW = [sys.executable, "-m", "mlworkshop.cli.main"]


def doctor(site: Path, *args: str, timeout: float = 120) -> tuple[int, dict]:
    """(exit status, the --json report) of `mlworkshop doctor --json ARGS --site SITE`."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MLWORKSHOP_")}
    result = subprocess.run(
        [*MLW, "doctor", "--json", *args, "--site", str(site)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environ,
    )
    assert "Traceback" not in result.stderr, result.stderr
    try:
        return result.returncode, json.loads(result.stdout)
    except ValueError:
        raise AssertionError(
            f"not JSON ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        ) from None


def finding(report: dict, id: str) -> dict:
    found = [f for f in report["findings"] if f["id"] == id]
    assert found, f"no {id} finding in {[f['id'] for f in report['findings']]}"
    worst = {"ok": 0, "warn": 1, "error": 2}
    return max(found, key=lambda f: worst[f["severity"]])
