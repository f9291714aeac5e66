"""Real databases for the allocator: a SQLite file, and a fresh PostgreSQL database per test."""

from __future__ import annotations

import pytest

@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """The hub database, on each engine the hub supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"
    return request.getfixturevalue("postgres_url")


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
