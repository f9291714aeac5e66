"""The usage store on SQLite and PostgreSQL: Alembic migration, open/close, lost sessions,
samples as increases, quota overrides and rates."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import inspect, text

from mlworkshop.config.usage import RatesConfig
from mlworkshop.usage.models import VERSION_TABLE
from mlworkshop.usage.store import SampleIn, UsageStore

from .conftest import GIB, T


def test_migration_creates_tables_and_is_repeatable(db_url):
    first = UsageStore(db_url)
    first.close()
    again = UsageStore(db_url)  # a second start: upgrade head is a no-op
    tables = set(inspect(again.engine).get_table_names())
    assert {
        "mlw_usage_sessions",
        "mlw_usage_samples",
        "mlw_usage_quota_overrides",
        "mlw_usage_rates",
        VERSION_TABLE,
    } <= tables
    assert "alembic_version" not in tables  # JupyterHub's own version table is left alone
    with again.engine.connect() as conn:
        assert conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == "0002"
    again.close()


def test_open_close_and_reason(store):
    sid = store.open_session(
        "alice",
        "",
        backend="local",
        profile="gpu-1",
        devices=["nvidia:0"],
        device_kind="nvidia",
        n_devices=1,
        pid=1234,
        groups=["ml", "ml"],
        started_at=T("2026-03-02 10:00"),
    )
    [open_] = store.open_sessions()
    assert (open_.id, open_.username, open_.pid, open_.devices, open_.groups) == (
        sid,
        "alice",
        1234,
        ["nvidia:0"],
        ["ml"],
    )
    closed = store.close_session("alice", "", "stopped", ended_at=T("2026-03-02 11:00"))
    assert (closed.id, closed.ended_at, closed.end_reason) == (
        sid,
        T("2026-03-02 11:00"),
        "stopped",
    )
    assert store.open_sessions() == []
    assert store.close_session("alice", "") is None  # nothing open: nothing to do


def test_stop_requested_by_quota_keeps_its_reason(store):
    sid = store.open_session("bob", started_at=T("2026-03-02 10:00"))
    store.request_stop(sid, "quota")
    assert (
        store.close_session("bob", "", "stopped", ended_at=T("2026-03-02 10:05")).end_reason
        == "quota"
    )


def test_samples_are_increases_since_the_previous_one(store):
    sid = store.open_session("alice", started_at=T("2026-03-02 10:00"))
    assert store.add_samples([SampleIn(sid, T("2026-03-02 10:01"), 30.0, GIB)]) == 1
    assert store.add_samples([SampleIn(sid, T("2026-03-02 10:02"), 75.0, 2 * GIB, 50.0, GIB)]) == 1
    assert (
        store.add_samples([SampleIn(sid, T("2026-03-02 10:03"), 70.0, GIB)]) == 1
    )  # a process exited: never negative
    rows = store.samples(sid)
    assert [(r["interval_s"], r["cpu_seconds"], r["mem_bytes"]) for r in rows] == [
        (60.0, 30.0, GIB),
        (60.0, 45.0, 2 * GIB),
        (60.0, 0.0, GIB),
    ]
    assert rows[1]["gpu_util"] == 50.0 and rows[1]["gpu_mem_bytes"] == GIB
    assert store.get_session(sid).last_seen == T("2026-03-02 10:03")
    latest = store.latest_samples([sid])[sid]
    assert latest["mem_bytes"] == GIB and latest["cpu_percent"] == 0.0
    store.close_session("alice", "", ended_at=T("2026-03-02 10:04"))
    assert (
        store.add_samples([SampleIn(sid, T("2026-03-02 10:05"), 99.0, GIB)]) == 0
    )  # closed: ignored


def test_lost_session_ends_at_its_last_sample(store):
    sid = store.open_session("alice", started_at=T("2026-03-02 10:00"))
    store.add_samples([SampleIn(sid, T("2026-03-02 10:20"), 5.0, GIB)])
    closed = store.close_session("alice", "", "lost", ended_at=T("2026-03-02 18:00"))
    assert (closed.end_reason, closed.ended_at) == ("lost", T("2026-03-02 10:20"))


def test_a_new_start_closes_a_forgotten_session_as_lost(store):
    old = store.open_session("alice", "", started_at=T("2026-03-02 10:00"))
    store.add_samples([SampleIn(old, T("2026-03-02 10:30"), 5.0, GIB)])
    other = store.open_session("alice", "gpu", started_at=T("2026-03-02 10:40"))
    new = store.open_session("alice", "", started_at=T("2026-03-02 12:00"))
    before = store.get_session(old)
    assert (before.end_reason, before.ended_at) == ("lost", T("2026-03-02 10:30"))
    assert {s.id for s in store.open_sessions("alice")} == {other, new}


def test_close_lost_keeps_the_alive_ones(store):
    a = store.open_session("alice", started_at=T("2026-03-02 10:00"))
    b = store.open_session("bob", started_at=T("2026-03-02 10:00"))
    closed = store.close_lost({("alice", "")}, now=T("2026-03-02 11:00"))
    assert [c.id for c in closed] == [b]
    assert store.get_session(b).end_reason == "lost" and store.get_session(b).ended_at == T(
        "2026-03-02 10:00"
    )
    assert store.get_session(a).ended_at is None


def test_sessions_listing_and_end_by_id(store):
    a = store.open_session("alice", started_at=T("2026-03-02 10:00"))
    store.close_session("alice", ended_at=T("2026-03-02 11:00"))
    b = store.open_session("alice", started_at=T("2026-03-03 10:00"))
    c = store.open_session("bob", started_at=T("2026-03-03 11:00"))
    assert [s.id for s in store.sessions()] == [c, b, a]
    assert [s.id for s in store.sessions("alice")] == [b, a]
    assert [s.id for s in store.sessions(start=T("2026-03-02 11:30"))] == [c, b]
    assert [s.id for s in store.sessions(end=T("2026-03-03 00:00"))] == [a]
    ended = store.end_session(c, "admin", ended_at=T("2026-03-03 12:00"))
    assert (ended.end_reason, ended.ended_at) == ("admin", T("2026-03-03 12:00"))
    assert store.end_session(c, "other").end_reason == "admin"  # already closed: unchanged
    assert store.end_session(99999, "x") is None
    assert store.get_session(b).as_dict()["start"] == "2026-03-03T10:00:00Z"


def test_overrides_and_rates(store):
    store.set_override("user", "alice", "teacher", gpu_hours_per_week=5.0)
    store.set_override("user", "alice", "teacher", gpu_hours_per_week=6.0, max_servers=2)
    store.set_override("group", "staff", "teacher", unlimited=True)
    rows = store.overrides()
    assert (
        rows[("user", "alice")].gpu_hours_per_week == 6.0
        and rows[("user", "alice")].max_servers == 2
    )
    assert rows[("group", "staff")].unlimited == 1
    assert store.clear_override("user", "alice") and not store.clear_override("user", "alice")
    store.sync_rates(RatesConfig(gpu_hour=2.0), now=T("2026-03-01 00:00"))
    store.sync_rates(RatesConfig(gpu_hour=2.0), now=T("2026-03-02 00:00"))  # unchanged: no new row
    store.sync_rates(RatesConfig(gpu_hour=3.0), now=T("2026-03-03 00:00"))
    assert [(r.valid_from, r.gpu_hour) for r in store.rates()] == [
        (T("2026-03-01 00:00"), 2.0),
        (T("2026-03-03 00:00"), 3.0),
    ]


def test_two_stores_on_one_database_see_each_other(db_url):
    hub_side, service_side = UsageStore(db_url), UsageStore(db_url)
    sid = hub_side.open_session("alice", started_at=dt.datetime(2026, 3, 2, 10))
    service_side.add_samples([SampleIn(sid, dt.datetime(2026, 3, 2, 10, 1), 1.0, GIB)])
    assert hub_side.get_session(sid).last_seen == dt.datetime(2026, 3, 2, 10, 1)
    hub_side.close()
    service_side.close()


def test_a_last_sample_without_history_adds_what_had_exited(store):
    """The hub's last sample at a stop reads only the processes still running (a fresh sampler
    knows nothing of those that exited); the store adds the CPU earlier samples said had exited."""
    sid = store.open_session("alice", "", pid=1, started_at=T("2026-03-02 10:00"))
    # the sampler: 10 s in all, 4 of them by a kernel that has exited since (restarted)
    store.add_samples([SampleIn(sid, T("2026-03-02 10:01"), 10.0, GIB, cpu_departed=4.0)])
    # the stop, 30 s later: the processes still there have used 7 s in all
    assert (
        store.last_sample(
            "alice", "", SampleIn(0, T("2026-03-02 10:01:30"), 7.0, GIB, cpu_departed=None)
        )
        == 1
    )
    assert [s["cpu_seconds"] for s in store.samples(sid)] == [10.0, 1.0]
    store.close_session("alice", "", ended_at=T("2026-03-02 10:01:30"))
    assert (
        store.last_sample(
            "alice", "", SampleIn(0, T("2026-03-02 10:02"), 9.0, GIB, cpu_departed=None)
        )
        == 0
    )
