"""Real databases for the allocator: a SQLite file, and a fresh PostgreSQL database per test."""

from __future__ import annotations

import pytest


@pytest.fixture
def allocators(db_url):
    """make(devices, slots) -> Allocator on this test's database; all closed afterwards."""
    from mlworkshop.accelerators.allocator import Allocator

    made = []

    def make(devices, slots=1):
        alloc = Allocator(db_url, devices, slots)
        made.append(alloc)
        return alloc

    yield make
    for alloc in made:
        alloc.close()
