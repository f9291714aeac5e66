"""Recorded vendor-tool outputs and a subprocess runner that replays them (as fixtures, so the
tests do not depend on how pytest sets sys.path)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "accelerators"


def recorded(name: str) -> tuple[str, int]:
    """(output, exit status) of a fixture; its leading `# ` comment lines are not tool output."""
    lines = (FIXTURES / name).read_text(encoding="utf-8").splitlines(keepends=True)
    status = 0
    while lines and lines[0].startswith("#"):
        if lines[0].startswith("# exit:"):
            status = int(lines[0].split(":", 1)[1])
        lines.pop(0)
    return "".join(lines), status


class RecordedRun:
    """Stands in for subprocess.run: answers each tool (argv[0]) from a fixture, or raises."""

    def __init__(self, **tools: str | BaseException):
        self.tools = tools
        self.calls: list[list[str]] = []

    def __call__(self, argv, capture_output=True, text=True, timeout=None):
        self.calls.append(list(argv))
        answer = self.tools.get(argv[0].replace("-", "_"), FileNotFoundError(argv[0]))
        if isinstance(answer, BaseException):
            raise answer
        out, status = recorded(answer)
        return subprocess.CompletedProcess(argv, status, stdout=out, stderr="")


@pytest.fixture
def recorded_output():
    """recorded_output("nvidia-smi/8-gpus.csv") -> (text, exit status)."""
    return recorded


@pytest.fixture
def recorded_run():
    """recorded_run(nvidia_smi="nvidia-smi/1-gpu.csv", npu_smi=...) -> a subprocess.run stand-in."""
    return RecordedRun


@pytest.fixture
def empty_dev(tmp_path: Path) -> Path:
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "null").touch()
    return dev


@pytest.fixture
def allocators(db_url):
    """make(devices, slots) -> Allocator on this test's database (a SQLite file, and a fresh
    PostgreSQL one); all closed afterwards."""
    from mlworkshop.accelerators.allocator import Allocator

    made = []

    def make(devices, slots=1):
        alloc = Allocator(db_url, devices, slots)
        made.append(alloc)
        return alloc

    yield make
    for alloc in made:
        alloc.close()
