"""Quota logic: precedence of limits, spawn refusals that say what is left, profiles offered,
and what happens to a running server."""

from __future__ import annotations

from types import SimpleNamespace

from mlworkshop.config.usage import Budget, QuotasConfig
from mlworkshop.usage.quotas import (
    Limits,
    Used,
    allowed_profiles,
    current_use,
    effective_limits,
    remaining,
    running_verdict,
    spawn_refusal,
    week_start,
)
from mlworkshop.usage.store import SampleIn

from .conftest import GIB, T


def _override(**kw):
    base = dict(
        unlimited=0,
        gpu_hours_per_week=None,
        cpu_hours_per_week=None,
        max_servers=None,
        max_devices=None,
    )
    return SimpleNamespace(**{**base, **kw})


QUOTAS = QuotasConfig(
    default=Budget(gpu_hours_per_week=2, max_servers=1, max_devices=1),
    groups={
        "staff": Budget(gpu_hours_per_week=20, max_servers=2, max_devices=4),
        "ta": Budget(gpu_hours_per_week=10),
    },
    users={"eve": Budget(gpu_hours_per_week=0)},
)


def test_precedence():
    assert effective_limits("alice", [], False, QUOTAS) == Limits(
        2, None, 1, 1, "usage.quotas.default"
    )
    staff = effective_limits("bob", ["staff"], False, QUOTAS)
    assert (staff.gpu_hours_per_week, staff.max_servers, staff.max_devices) == (20, 2, 4)
    both = effective_limits(
        "bob", ["ta", "staff"], False, QUOTAS
    )  # the most generous of each limit
    assert (both.gpu_hours_per_week, both.max_servers, both.max_devices) == (20, 2, 4)
    ta = effective_limits(
        "tim", ["ta"], False, QUOTAS
    )  # a group value replaces the default, others stay
    assert (ta.gpu_hours_per_week, ta.max_servers) == (10, 1)
    eve = effective_limits("eve", ["staff"], False, QUOTAS)  # the user's own entry wins over groups
    assert (eve.gpu_hours_per_week, eve.max_servers, eve.source) == (0, 2, "usage.quotas.users.eve")
    assert effective_limits("root", [], True, QUOTAS).unlimited
    over = effective_limits(
        "alice", [], False, QUOTAS, {("user", "alice"): _override(gpu_hours_per_week=7)}
    )
    assert (over.gpu_hours_per_week, over.max_servers, over.source) == (
        7,
        1,
        "admin override for alice",
    )
    free = effective_limits("alice", [], False, QUOTAS, {("user", "alice"): _override(unlimited=1)})
    assert free.unlimited
    grp = effective_limits(
        "bob", ["staff"], False, QUOTAS, {("group", "staff"): _override(max_servers=5)}
    )
    assert (grp.gpu_hours_per_week, grp.max_servers) == (20, 5)


def test_spawn_refusal_says_what_is_left():
    limits = Limits(gpu_hours_per_week=2, max_servers=2, max_devices=1)
    assert spawn_refusal(limits, Used(gpu_hours=1.5), 1) is None
    msg = spawn_refusal(limits, Used(gpu_hours=2.25), 1)
    assert "GPU/NPU budget of 2 device-hours" in msg and "0 of 2 device-hours left" in msg
    assert "CPU-only" in msg
    assert (
        spawn_refusal(limits, Used(gpu_hours=2.25), 0) is None
    )  # a CPU-only server may still start
    msg = spawn_refusal(limits, Used(servers=2), 0)
    assert "may run 2 at once" in msg and "servers: 0 of 2" in msg
    assert "may hold 1 at once" in spawn_refusal(limits, Used(devices=1, servers=1), 1)
    assert spawn_refusal(Limits(cpu_hours_per_week=1), Used(cpu_hours=1), 0).startswith(
        "Quota: your CPU budget"
    )


def test_remaining_and_profiles():
    limits = Limits(gpu_hours_per_week=2, max_devices=2)
    rem = remaining(limits, Used(gpu_hours=0.5, devices=1))
    assert (rem.gpu_hours, rem.devices, rem.servers) == (1.5, 1, None)
    profiles = [
        SimpleNamespace(slug="cpu", count=0),
        SimpleNamespace(slug="gpu-1", count=1),
        SimpleNamespace(slug="gpu-2", count=2),
    ]
    assert [p.slug for p in allowed_profiles(profiles, rem)] == ["cpu", "gpu-1"]
    spent = remaining(limits, Used(gpu_hours=3))
    assert spent.gpu_hours == 0 and [p.slug for p in allowed_profiles(profiles, spent)] == ["cpu"]
    assert len(allowed_profiles(profiles, remaining(Limits(), Used(gpu_hours=100)))) == 3


def test_running_verdict():
    limits = Limits(gpu_hours_per_week=10, cpu_hours_per_week=10)
    assert running_verdict(limits, Used(gpu_hours=5), 0.9, True, False).state == "ok"
    warn = running_verdict(limits, Used(gpu_hours=9.5), 0.9, True, False)
    assert (warn.state, warn.enforce) == ("warn", False) and "95%" in warn.message
    over = running_verdict(limits, Used(gpu_hours=10), 0.9, True, False)
    assert (over.state, over.enforce) == ("over", True)
    # a CPU-only server over its CPU budget: stopped only when enforce_cpu_only is on
    assert running_verdict(limits, Used(cpu_hours=11), 0.9, False, False).enforce is False
    assert running_verdict(limits, Used(cpu_hours=11), 0.9, False, True).enforce is True
    assert (
        running_verdict(limits, Used(gpu_hours=50), 0.9, False, False).state == "ok"
    )  # no GPU: GPU budget moot
    assert running_verdict(Limits(gpu_hours_per_week=0), Used(), 0.9, True, False).state == "over"


def test_week_start():
    assert week_start(T("2026-03-04 15:30")) == T("2026-03-02 00:00")  # a Wednesday -> Monday
    assert week_start(T("2026-03-02 00:00")) == T("2026-03-02 00:00")


def test_current_use_from_the_store(store):
    now = T("2026-03-04 12:00")
    old = store.open_session(
        "alice", "old", n_devices=1, device_kind="nvidia", started_at=T("2026-03-01 22:00")
    )
    store.close_session("alice", "old", ended_at=T("2026-03-02 02:00"))  # 2 h of it this week
    sid = store.open_session(
        "alice", "", n_devices=2, device_kind="nvidia", started_at=T("2026-03-04 11:00")
    )
    store.add_samples([SampleIn(sid, T("2026-03-04 11:30"), 1800, GIB)])
    store.open_session("bob", "", started_at=T("2026-03-04 11:00"))
    used = current_use(store, "alice", now=now)
    assert (round(used.gpu_hours, 6), round(used.cpu_hours, 6), used.servers, used.devices) == (
        4.0,
        0.5,
        1,
        2,
    )
    assert old != sid


def test_current_use_many_matches_one_by_one(store):
    from mlworkshop.usage.quotas import current_use_many

    now = T("2026-03-04 12:00")
    a = store.open_session(
        "alice", "", n_devices=2, device_kind="nvidia", started_at=T("2026-03-04 11:00")
    )
    store.add_samples([SampleIn(a, T("2026-03-04 11:30"), 1800, GIB)])
    store.open_session(
        "bob", "", device_kind="ascend", n_devices=1, started_at=T("2026-03-03 12:00")
    )
    many = current_use_many(store, ["alice", "bob", "carol"], now=now)
    assert many == {name: current_use(store, name, now=now) for name in ("alice", "bob", "carol")}
    assert many["bob"].gpu_hours == 24.0 and many["carol"] == Used()
