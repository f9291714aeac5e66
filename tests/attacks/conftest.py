"""Attacks by a malicious student against a real hub run as root (issue 11).

Every test here runs its attack as the student (`runuser`, or code in the student's own kernel)
against real accounts, a real hub, proxy and servers, and asserts the attack was refused.
"""

from __future__ import annotations

import os

import pytest

from tests.integration.conftest import make_hub  # noqa: F401  (the real-hub factory)

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/attacks/" in str(item.fspath) and os.geteuid() != 0:
            item.add_marker(
                pytest.mark.skip(reason="attacks need a hub run as root (real student accounts)")
            )
