"""Real usage databases: a SQLite file, and a fresh PostgreSQL database per test."""

from __future__ import annotations

import datetime as dt

import pytest

from mlworkshop.usage.store import SampleIn, UsageStore


@pytest.fixture
def store(db_url):
    s = UsageStore(db_url)
    yield s
    s.close()


def T(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


GIB = 1024**3

# Hand-computed expectations for this fixture are in test_usage_reports.py.
WINDOW = (T("2026-03-02 00:00"), T("2026-03-04 00:00"))
NOW = T("2026-03-04 02:00")


def load_fixture(store: UsageStore) -> dict[str, int]:
    ids = {}
    ids["a1"] = store.open_session(
        "alice",
        groups=["ml"],
        profile="gpu-1",
        device_kind="nvidia",
        n_devices=1,
        devices=["nvidia:0"],
        started_at=T("2026-03-02 10:00"),
    )
    store.add_samples([SampleIn(ids["a1"], T("2026-03-02 10:30"), 900, 2 * GIB)])
    store.add_samples([SampleIn(ids["a1"], T("2026-03-02 11:30"), 2700, 1 * GIB)])
    store.add_samples([SampleIn(ids["a1"], T("2026-03-02 12:30"), 2700, 1 * GIB)])
    store.close_session("alice", "", "stopped", ended_at=T("2026-03-02 12:30"))

    ids["a2"] = store.open_session(
        "alice", groups=["ml"], profile="cpu", started_at=T("2026-03-02 23:00")
    )
    store.add_samples([SampleIn(ids["a2"], T("2026-03-02 23:30"), 360, GIB // 2)])
    store.add_samples([SampleIn(ids["a2"], T("2026-03-03 00:30"), 1080, GIB // 2)])
    store.close_session("alice", "", "stopped", ended_at=T("2026-03-03 01:00"))

    ids["b1"] = store.open_session(
        "bob",
        groups=["staff", "ml"],
        profile="npu-2",
        device_kind="ascend",
        n_devices=2,
        devices=["ascend:0", "ascend:1"],
        started_at=T("2026-03-03 22:00"),
    )
    store.add_samples([SampleIn(ids["b1"], T("2026-03-03 23:00"), 3600, 4 * GIB)])
    store.add_samples(
        [SampleIn(ids["b1"], T("2026-03-04 01:00"), 7200, 4 * GIB)]
    )  # after the window

    ids["c1"] = store.open_session(
        "carol",
        profile="gpu-1",
        device_kind="nvidia",
        n_devices=1,
        devices=["nvidia:1"],
        started_at=T("2026-03-01 20:00"),
    )
    store.add_samples(
        [SampleIn(ids["c1"], T("2026-03-01 23:30"), 100, 2 * GIB)]
    )  # before the window
    store.add_samples([SampleIn(ids["c1"], T("2026-03-02 00:00"), 1900, 2 * GIB)])
    store.close_session("carol", "", "stopped", ended_at=T("2026-03-02 01:00"))

    ids["d1"] = store.open_session(
        "dave", profile="gpu-1", device_kind="nvidia", n_devices=1, started_at=T("2026-03-05 09:00")
    )  # after the window
    store.add_samples([SampleIn(ids["d1"], T("2026-03-05 10:00"), 3600, GIB)])
    store.close_session("dave", "", "stopped", ended_at=T("2026-03-05 10:00"))
    return ids
