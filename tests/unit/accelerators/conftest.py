"""Fixtures of the accelerator unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def empty_dev(tmp_path: Path) -> Path:
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "null").touch()
    return dev
