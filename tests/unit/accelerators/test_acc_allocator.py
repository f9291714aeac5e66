"""The allocator against real SQLite files and a real PostgreSQL database.

No mocks: threads race through the real engines, a hub restart is a fresh Allocator on the same
database, and a dead server is a real process that was killed.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from mlworkshop.accelerators.allocator import Limit, NoDeviceFree, OverLimit, since_text
from mlworkshop.accelerators.inventory import Device

GPUS = [Device("nvidia", i, f"GPU-{i}", "NVIDIA A100-SXM4-80GB", 81920) for i in range(4)]
NPUS = [Device("ascend", i, None, "910B3", 65536) for i in range(2)]


def test_allocate_release_and_read_back(allocators):
    alloc = allocators(GPUS + NPUS)
    got = alloc.allocate("alice", "", "nvidia", 2)
    assert [d.index for d in got] == [0, 1] and got[0].name == "NVIDIA A100-SXM4-80GB"
    assert alloc.held_by("alice", "") == got
    assert alloc.held_by("alice", "other") == []
    assert [d.index for d in alloc.allocate("bob", "lab", "ascend", 1)] == [0]
    assert alloc.held_by_user("bob") == {"lab": [NPUS[0]]}
    usage = {u.device.key: u for u in alloc.usage()}
    assert [h.username for h in usage[("nvidia", 0)].holders] == ["alice"]
    assert usage[("nvidia", 2)].free_slots == 1
    assert alloc.free_count("nvidia") == 2 and alloc.free_count("ascend") == 1
    assert alloc.release("alice", "") == got
    assert alloc.held_by("alice", "") == [] and alloc.free_count("nvidia") == 4
    assert alloc.release("alice", "") == []  # releasing twice is harmless


def test_allocation_is_idempotent_and_replaceable(allocators):
    alloc = allocators(GPUS)
    first = alloc.allocate("alice", "", "nvidia", 1)
    assert alloc.allocate("alice", "", "nvidia", 1) == first  # a retried spawn
    assert len(alloc.allocate("alice", "", "nvidia", 3)) == 3  # a new choice replaces the old
    assert alloc.free_count("nvidia") == 1
    assert alloc.allocate("alice", "", "nvidia", 0) == [] and alloc.free_count("nvidia") == 4


def test_no_device_free_message(allocators):
    alloc = allocators(GPUS[:2])
    alloc.allocate("alice", "", "nvidia", 1)
    alloc.allocate("bob", "train", "nvidia", 1)
    with pytest.raises(NoDeviceFree) as caught:
        alloc.allocate("carol", "", "nvidia", 1)
    message = str(caught.value)
    assert re.fullmatch(
        r"Both GPUs are in use \(GPU 0 by alice since \d\d:\d\d UTC, GPU 1 by bob/train since \d\d:\d\d UTC\)\. "
        r"Try again when one is free, or start a CPU-only server\.",
        message,
    ), message
    assert alloc.held_by("carol", "") == []


def test_partial_request_leaves_nothing_behind(allocators):
    alloc = allocators(GPUS)
    alloc.allocate("alice", "", "nvidia", 3)
    with pytest.raises(
        NoDeviceFree, match=r"You asked for 2 GPUs but only 1 of 4 is free \(GPU 0 by alice"
    ):
        alloc.allocate("bob", "", "nvidia", 2)
    assert alloc.held_by("bob", "") == [] and alloc.free_count("nvidia") == 1
    alloc.allocate("carol", "", "nvidia", 1)
    with pytest.raises(NoDeviceFree, match="All 4 GPUs are in use"):
        alloc.allocate("dave", "", "nvidia", 1)


def test_over_limit_names_the_limit(allocators):
    alloc = allocators(GPUS)
    limit = Limit(1, "accelerators.group_limits.students (group students)")
    alloc.allocate("alice", "one", "nvidia", 1, limit=limit)
    with pytest.raises(OverLimit) as caught:
        alloc.allocate("alice", "two", "nvidia", 1, limit=limit)
    assert str(caught.value) == (
        "alice may hold at most 1 device at once (set by accelerators.group_limits.students (group students)); "
        "they hold 1 and asked for 1 more. Stop a server that uses one first. Ask an admin if you need more."
    )
    with pytest.raises(
        OverLimit,
        match=r"alice may not use accelerators \(limit 0, set by accelerators.max_per_user\)",
    ):
        alloc.allocate("alice", "three", "nvidia", 1, limit=Limit(0, "accelerators.max_per_user"))
    assert alloc.held_by("alice", "two") == []
    assert (
        len(
            alloc.allocate(
                "alice", "two", "nvidia", 3, limit=Limit(None, "accelerators.admins_exempt (admin)")
            )
        )
        == 3
    )


def test_a_restarted_hub_keeps_the_allocations(allocators):
    before = allocators(GPUS)
    taken = before.allocate("alice", "", "nvidia", 2)
    before.close()
    after = allocators(GPUS)  # the hub restarted: a new object on the same database
    assert after.held_by("alice", "") == taken
    assert not set(after.allocate("bob", "", "nvidia", 2)) & set(taken)
    with pytest.raises(NoDeviceFree, match="All 4 GPUs are in use"):
        after.allocate("carol", "", "nvidia", 1)


def test_slots_share_a_device_least_loaded_first(allocators):
    alloc = allocators(GPUS[:2], slots=2)
    order = [alloc.allocate(f"u{i}", "", "nvidia", 1)[0].index for i in range(4)]
    assert order == [0, 1, 0, 1]  # a second server on GPU 0 only once GPU 1 has one too
    assert {u.device.index: len(u.holders) for u in alloc.usage()} == {0: 2, 1: 2}
    with pytest.raises(
        NoDeviceFree, match=r"Both GPUs are in use \(GPU 0 by u0 since .* UTC and u2 since"
    ):
        alloc.allocate("u5", "", "nvidia", 1)
    alloc.release("u0", "")
    assert alloc.allocate("u5", "", "nvidia", 1)[0].index == 0


def test_one_device_message(allocators):
    alloc = allocators(NPUS[:1])
    alloc.allocate("alice", "", "ascend", 1)
    with pytest.raises(NoDeviceFree, match=r"^The NPU is in use \(NPU 0 by alice since"):
        alloc.allocate("bob", "", "ascend", 1)
    with pytest.raises(
        NoDeviceFree, match=r"^This server has no GPUs\. Start a CPU-only server\.$"
    ):
        alloc.allocate("bob", "", "nvidia", 1)


def test_since_text_shows_the_day_when_not_today():
    now = dt.datetime(2026, 11, 22, 10, 0)
    assert since_text(dt.datetime(2026, 11, 22, 9, 12), now) == "09:12 UTC"
    assert since_text(dt.datetime(2026, 11, 21, 9, 5), now) == "Nov 21 09:05 UTC"


# --- concurrency ------------------------------------------------------------------------
def test_50_simultaneous_spawns_on_4_gpus(allocators):
    alloc = allocators(GPUS)
    start = threading.Barrier(50)

    def spawn(i):
        start.wait()
        try:
            return alloc.allocate(f"user{i}", "", "nvidia", 1)
        except NoDeviceFree:
            return None

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(spawn, range(50)))
    winners = [r for r in results if r]
    assert len(winners) == 4
    assert sorted(r[0].index for r in winners) == [0, 1, 2, 3]
    assert sum(len(u.holders) for u in alloc.usage()) == 4


def test_50_threads_churning_never_share_a_device(allocators):
    """Spawn, run a moment, stop, again: at no instant do two running servers hold one GPU."""
    alloc = allocators(GPUS)
    running: dict[int, str] = {}
    guard = threading.Lock()
    clashes: list[str] = []
    counts = {"ran": 0, "refused": 0}
    start = threading.Barrier(50)

    def server(i):
        rng = random.Random(i)
        name = f"user{i}"
        start.wait()
        for _ in range(3):
            try:
                (gpu,) = alloc.allocate(name, "", "nvidia", rng.choice([1, 1, 1, 2]))[:1]
            except NoDeviceFree:
                with guard:
                    counts["refused"] += 1
                time.sleep(rng.uniform(0.001, 0.01))
                continue
            held = alloc.held_by(name, "")
            with guard:
                for d in held:
                    if d.index in running:
                        clashes.append(f"GPU {d.index}: {running[d.index]} and {name}")
                    running[d.index] = name
                counts["ran"] += 1
            time.sleep(rng.uniform(0.001, 0.005))
            with guard:
                for d in held:
                    running.pop(d.index, None)
            alloc.release(name, "")

    with ThreadPoolExecutor(50) as pool:
        list(pool.map(server, range(50)))
    assert clashes == []
    assert counts["ran"] >= 4 and counts["ran"] + counts["refused"] == 150
    assert alloc.usage() and all(not u.holders for u in alloc.usage())


def test_one_user_racing_their_own_limit(allocators):
    alloc = allocators(GPUS)
    limit = Limit(1, "accelerators.max_per_user")
    start = threading.Barrier(10)

    def spawn(i):
        start.wait()
        try:
            return alloc.allocate("alice", f"server{i}", "nvidia", 1, limit=limit)
        except OverLimit:
            return None

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(spawn, range(10)))
    assert sum(1 for r in results if r) == 1


# --- reconcile --------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_reconcile_frees_the_devices_of_a_killed_server(allocators):
    alloc = allocators(GPUS)
    crashed = subprocess.Popen(["sleep", "60"])
    healthy = subprocess.Popen(["sleep", "60"])
    try:
        pids = {("alice", ""): crashed.pid, ("bob", "train"): healthy.pid}
        alloc.allocate("alice", "", "nvidia", 2)
        alloc.allocate("bob", "train", "nvidia", 1)
        crashed.kill()
        crashed.wait(timeout=10)
        freed = alloc.reconcile(lambda user, server: _pid_alive(pids[(user, server)]))
        assert [(u, s, [d.index for d in devs]) for u, s, devs in freed] == [("alice", "", [0, 1])]
        assert alloc.held_by("alice", "") == []
        assert [d.index for d in alloc.held_by("bob", "train")] == [2]
        assert alloc.free_count("nvidia") == 3
    finally:
        for proc in (crashed, healthy):
            proc.kill()
            proc.wait(timeout=10)


def test_reconcile_with_the_set_of_running_servers(allocators):
    alloc = allocators(GPUS)
    for user in ("a", "b", "c"):
        alloc.allocate(user, "", "nvidia", 1)
    freed = alloc.reconcile({("b", "")})
    assert sorted(u for u, _, _ in freed) == ["a", "c"]
    assert [u.holders[0].username for u in alloc.usage() if u.holders] == ["b"]
    assert alloc.reconcile({("b", "")}) == []


def test_reconcile_after_a_restart(allocators):
    """The hub was down while a server died: at start it reconciles what the table says."""
    before = allocators(GPUS)
    before.allocate("alice", "", "nvidia", 1)
    before.close()
    after = allocators(GPUS)
    assert [u for u, _, _ in after.reconcile(lambda user, server: False)] == ["alice"]
    assert after.free_count("nvidia") == 4
