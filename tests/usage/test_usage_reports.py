"""Report sums on a fixture of sessions whose figures were computed by hand (conftest.py):

alice  s1 gpu x1 Mon 10:00-12:30: 2.5 GPU-h; samples 900+1800+0 CPU-s, 2 GiB x 0.5 h + 1 x 1 + 1 x 1
       s2 cpu    Mon 23:00-Tue 01:00: samples Mon 23:30 360 CPU-s 0.5 GiB x 0.5 h, Tue 00:30 720 CPU-s 0.5 GiB x 1 h
bob    b1 npu x2 Tue 22:00-(running; now Wed 02:00): window ends Wed 00:00 -> 2 h x 2 = 4 NPU-h;
       sample Tue 23:00 3600 CPU-s 4 GiB x 1 h (the Wed 01:00 sample is outside)
carol  c1 gpu x1 Sun 20:00-Mon 01:00: 1 GPU-h inside; sample Mon 00:00 1800 CPU-s 2 GiB x 0.5 h
dave   after the window: absent.
Rates: CPU-h 0.10, GiB-h 0.01, GPU-h 2.00, NPU-h 1.50.
"""

from __future__ import annotations

import pytest

from mlworkshop.usage.reports import NO_GROUP, Rates, report, to_csv, totals

from .conftest import NOW, WINDOW, load_fixture

RATES = Rates(cpu_hour=0.10, mem_gib_hour=0.01, gpu_hour=2.0, npu_hour=1.5)


def _table(rows):
    return {
        r.key: (
            r.sessions,
            round(r.cpu_hours, 6),
            round(r.mem_gib_hours, 6),
            round(r.gpu_hours, 6),
            round(r.npu_hours, 6),
            round(r.cost, 6),
        )
        for r in rows
    }


def test_report_by_user(store):
    load_fixture(store)
    rows = report(store, *WINDOW, "user", RATES, now=NOW)
    assert _table(rows) == {
        "alice": (2, 1.05, 3.75, 2.5, 0.0, 5.1425),
        "bob": (1, 1.0, 4.0, 0.0, 4.0, 6.14),
        "carol": (1, 0.5, 1.0, 1.0, 0.0, 2.06),
    }
    total = totals(rows)
    assert (total.sessions, round(total.cpu_hours, 6), round(total.mem_gib_hours, 6)) == (
        4,
        2.55,
        8.75,
    )
    assert round(total.cost, 6) == round(5.1425 + 6.14 + 2.06, 6)


def test_report_by_group(store):
    load_fixture(store)
    rows = report(store, *WINDOW, "group", RATES, now=NOW)
    assert _table(rows) == {
        "ml": (3, 2.05, 7.75, 2.5, 4.0, 11.2825),
        "staff": (1, 1.0, 4.0, 0.0, 4.0, 6.14),
        NO_GROUP: (1, 0.5, 1.0, 1.0, 0.0, 2.06),
    }


def test_report_by_day(store):
    load_fixture(store)
    rows = report(store, *WINDOW, "day", RATES, now=NOW)
    assert _table(rows) == {
        "2026-03-02": (3, 1.35, 4.25, 3.5, 0.0, 7.1775),
        "2026-03-03": (2, 1.2, 4.5, 0.0, 4.0, 6.165),
    }
    assert totals(rows).sessions == 4  # alice's s2 spans two days and counts once


def test_report_for_one_user_and_csv(store):
    load_fixture(store)
    rows = report(store, *WINDOW, "user", RATES, usernames=["bob"], now=NOW)
    assert _table(rows) == {"bob": (1, 1.0, 4.0, 0.0, 4.0, 6.14)}
    text = to_csv(rows, "user", "EUR")
    assert text.splitlines() == [
        "user,sessions,cpu_hours,mem_gib_hours,gpu_hours,npu_hours,cost_EUR",
        "bob,1,1.0000,4.0000,0.0000,4.0000,6.14",
    ]


def test_empty_window(store):
    load_fixture(store)
    from .conftest import T

    assert report(store, T("2025-01-01"), T("2025-02-01"), "user", RATES, now=NOW) == []


@pytest.mark.parametrize("by", ["user", "group", "day"])
def test_running_session_counts_up_to_now(store, by):
    load_fixture(store)
    from .conftest import T

    # bob's NPU session is still open: a window reaching past "now" counts it only up to now
    rows = report(
        store, T("2026-03-03 00:00"), T("2026-03-10 00:00"), by, RATES, usernames=["bob"], now=NOW
    )
    if by == "group":  # bob is in two groups: each counts his whole use
        assert {r.key: round(r.npu_hours, 6) for r in rows} == {"ml": 8.0, "staff": 8.0}
    else:
        assert round(sum(r.npu_hours for r in rows), 6) == 8.0  # Tue 22:00 -> Wed 02:00, 2 devices
