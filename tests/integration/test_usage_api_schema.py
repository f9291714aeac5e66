"""schemathesis against the usage service's OpenAPI spec on a real hub: no server errors, with an
admin's token (every endpoint, writes included), with a student's token and with none."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .hubctl import REPO
from .test_usage_hub import ADMIN_PW, ALICE_PW, USAGE, UsageAPI, login, start_hub, usage_hub

pytestmark = pytest.mark.integration


def _schemathesis(
    url: str, token: str | None, name: str, examples: int = 25
) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("st")
    if not exe.exists() and shutil.which("st") is None:
        pytest.skip("schemathesis is not installed (pip install schemathesis)")
    args = [
        str(exe if exe.exists() else "st"),
        "run",
        url,
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(examples),
        "--workers",
        "1",
        "--no-color",
        "--report",
        "junit",
        "--report-junit-path",
        str(REPO / "test-artifacts" / f"schemathesis-{name}.xml"),
    ]
    if token:
        args += ["-H", f"Authorization: token {token}"]
    # run inside test-artifacts/ (ignored by git): schemathesis keeps a .schemathesis/ cache in its cwd
    return subprocess.run(
        args, capture_output=True, text=True, timeout=540, cwd=REPO / "test-artifacts"
    )


def test_openapi_spec_has_no_server_errors(make_hub):
    (REPO / "test-artifacts").mkdir(exist_ok=True)
    hub = usage_hub(make_hub)
    start_hub(hub)
    teacher = login(hub, "teacher", ADMIN_PW)
    alice = login(hub, "alice", ALICE_PW)
    admin_token = teacher.new_token("teacher")
    spec = UsageAPI(hub, admin_token).json("/openapi.json")
    paths = set(spec["paths"])
    for seed in (
        "/sessions",
        "/sessions/{session_id}",
        "/sessions/{session_id}/end",
        "/users/{username}/limits",
        "/report",
        "/servers",
    ):
        assert f"{USAGE}/api{seed}" in paths, sorted(paths)
    url = hub.url + USAGE + "/openapi.json"
    for name, token in (
        ("admin", admin_token),
        ("student", alice.new_token("alice")),
        ("anonymous", None),
    ):
        result = _schemathesis(
            url, token, name, int(os.environ.get("MLW_SCHEMATHESIS_EXAMPLES", "25"))
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, (
            f"schemathesis ({name}) found problems:\n{output[-6000:]}\n{hub.log()[-3000:]}"
        )
        assert "Server error" not in output
