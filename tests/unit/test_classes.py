"""Class pre-warm's rules (hub/classes.py): schedules in group properties, when servers start, and
what the culler does with a class's servers before and after the bell."""

from __future__ import annotations

import datetime as dt

import pytest

from mlworkshop.hub.classes import (
    SCHEDULE_KEY,
    Schedule,
    ScheduleError,
    bell_at,
    cull_decision,
    due_to_start,
    never_used,
    user_of,
)

T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)
CLASS = Schedule("cls", bell=T0, prewarm=10 * MIN, grace=15 * MIN)


def iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")  # as JupyterHub writes them


def server(started: dt.datetime, last: dt.datetime | None = None) -> dict:
    return {
        "url": "/hub-base/user/alice/",
        "started": iso(started),
        "last_activity": iso(last or started),
    }


def test_schedule_round_trips_through_group_properties():
    group = {"name": "cls", "users": ["alice"], "properties": CLASS.to_properties()}
    assert Schedule.from_group(group) == CLASS


@pytest.mark.parametrize(
    "properties",
    [
        {},
        {SCHEDULE_KEY: "08:00"},
        {SCHEDULE_KEY: {"prewarm_seconds": 60}},
        {SCHEDULE_KEY: {"bell": "tomorrow"}},
        {SCHEDULE_KEY: {"bell": iso(T0), "grace_seconds": "long"}},
    ],
)
def test_a_malformed_schedule_is_ignored_not_acted_on(properties):
    assert Schedule.from_group({"name": "cls", "properties": properties}) is None


def test_servers_start_from_the_prewarm_until_the_grace_is_over():
    assert not due_to_start(CLASS, T0 - 11 * MIN)
    assert due_to_start(CLASS, T0 - 10 * MIN)
    assert due_to_start(CLASS, T0 + 14 * MIN)
    assert not due_to_start(CLASS, T0 + 15 * MIN)


def test_before_the_bell_and_in_the_grace_a_prewarmed_server_is_kept_however_idle():
    prewarmed = server(T0 - 10 * MIN)
    for now in (T0 - 5 * MIN, T0, T0 + 14 * MIN):
        assert cull_decision([CLASS], prewarmed, now, None) is False


def test_after_the_grace_an_unused_prewarmed_server_is_culled_a_used_one_follows_the_idle_rule():
    prewarmed = server(T0 - 10 * MIN)
    after = T0 + 16 * MIN
    assert cull_decision([CLASS], prewarmed, after, None) is True
    # the student logged in at the bell: the hub saw the user at once, the server not yet
    assert cull_decision([CLASS], prewarmed, after, iso(T0)) is None
    # the server reported activity itself
    assert cull_decision([CLASS], server(T0 - 10 * MIN, T0 + 3 * MIN), after, None) is None


def test_a_server_the_student_started_long_before_is_not_the_classes():
    earlier = server(T0 - 3 * 60 * MIN)
    assert cull_decision([CLASS], earlier, T0, None) is None
    assert cull_decision([CLASS], earlier, T0 + 16 * MIN, None) is None
    assert cull_decision([], server(T0), T0, None) is None


def test_never_used_counts_the_hubs_own_activity_slack():
    assert never_used(server(T0, T0 + dt.timedelta(seconds=30)), None)
    assert not never_used(server(T0, T0 + 5 * MIN), None)
    assert not never_used(server(T0), iso(T0 + 2 * MIN))
    assert never_used(server(T0), iso(T0 + dt.timedelta(seconds=50)))  # its own first report
    assert never_used(server(T0), iso(T0 - 60 * MIN))  # logged in before the pre-warm


def test_user_of_a_server_model():
    assert user_of({"url": "/user/alice/"}) == "alice"
    assert user_of({"url": "/base/user/bob/named"}) == "bob"
    assert user_of({"url": "/elsewhere"}) is None


def test_bell_at_today_or_refused():
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    later = (now + 2 * MIN).astimezone()
    if later.date() != now.astimezone().date():
        pytest.skip("two minutes to midnight: 'later today' does not exist")
    bell = bell_at(f"{later:%H:%M:%S}", now)
    assert bell == later.astimezone(dt.UTC)
    earlier = (now - 2 * MIN).astimezone()
    if earlier.date() == now.astimezone().date():
        with pytest.raises(ScheduleError, match="has passed today"):
            bell_at(f"{earlier:%H:%M}", now)
    with pytest.raises(ScheduleError, match="HH:MM"):
        bell_at("8 o'clock", now)
