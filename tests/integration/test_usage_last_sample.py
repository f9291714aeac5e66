"""A short session's CPU is recorded (issue 12, item 5): a student burns a known amount of CPU in
a kernel and stops the server long before the sampler's next round (or the server dies). The hub
takes a last sample as it stops the server (or finds it dead), so the session's recorded CPU is
what its processes used.

The sampler's interval is an hour here, so no round of the usage service falls between the burn
and the stop: without the last sample the session has no CPU at all. What the session's processes
used is read independently just before the stop: every process of the student's account (each
student is an account of their own; the kernel is the fork server's child or the server's).
"""

from __future__ import annotations

import asyncio
import os
import pwd

import psutil
import pytest

from .hubctl import Server, free_port, mlw

pytestmark = pytest.mark.integration

ALICE_PW = "alice-Secret-42"
BURN_S = 3.0
BURN = f"""
import resource, time
start = time.process_time()
while time.process_time() - start < {BURN_S}:
    pass
used = resource.getrusage(resource.RUSAGE_SELF)
print(used.ru_utime + used.ru_stime)
"""


def account_cpu(account: str) -> float:
    """CPU seconds used so far by every process of `account` (with the children they reaped)."""
    uid = pwd.getpwnam(account).pw_uid
    total = 0.0
    for proc in psutil.process_iter():
        try:
            if proc.uids().real != uid:
                continue
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def recorded_cpu(hub, username: str, reason: str = "stopped") -> tuple[float, int]:
    """(CPU seconds of the user's only session, as its samples add up; how many samples)."""
    from mlworkshop.config import load_config
    from mlworkshop.site import Site
    from mlworkshop.usage.store import UsageStore

    site = Site(hub.site)
    store = UsageStore(site.usage_db_url(load_config(site.root)))
    try:
        [session] = store.sessions(username)
        assert session.ended_at is not None and session.end_reason == reason, session
        samples = store.samples(session.id)
        return sum(s["cpu_seconds"] for s in samples), len(samples)
    finally:
        store.close()


@pytest.mark.skipif(
    os.geteuid() != 0, reason="servers run as students' own accounts under a root hub"
)
@pytest.mark.parametrize("fork_kernels", ["true", "false"], ids=["forked-kernel", "child-kernel"])
def test_a_short_session_records_the_cpu_its_kernel_burnt(make_hub, fork_kernels):
    hub = make_hub(
        **{
            "usage.sample_every": 3600,
            "usage.service_port": free_port(),
            "culler.enabled": "false",
            "spawner.local.fork_kernels": fork_kernels,
        }
    )
    mlw(hub.site, "user", "add", "alice", "--password-stdin", input=ALICE_PW + "\n")
    hub.start()
    alice = hub.browser()
    assert alice.login("alice", ALICE_PW).status_code == 302
    token = alice.new_token("alice")
    alice.start_server("alice")
    server = Server(hub.url, "alice", token)

    kernel_cpu = float(asyncio.run(server.run_code(BURN, timeout=120, shutdown=False)).strip())
    assert kernel_cpu >= BURN_S
    used = account_cpu(hub.prefix + "alice")  # the server, the kernel and anything else of hers
    alice.stop_server("alice")

    cpu, samples = recorded_cpu(hub, "alice")
    assert samples >= 1, "no sample at all: the session's CPU is lost"
    # Accounting, not timing: everything her processes had used is there (what they use between
    # the reading above and the hub's last sample -- answering the stop -- is the only slack),
    # and nothing is counted twice.
    assert used - 0.05 <= cpu <= used + 1.0, (cpu, used, kernel_cpu)


def session_pid(hub, username: str) -> int:
    from mlworkshop.config import load_config
    from mlworkshop.site import Site
    from mlworkshop.usage.store import UsageStore

    site = Site(hub.site)
    store = UsageStore(site.usage_db_url(load_config(site.root)))
    try:
        [session] = store.open_sessions(username)
        return session.pid
    finally:
        store.close()


@pytest.mark.skipif(
    os.geteuid() != 0, reason="servers run as students' own accounts under a root hub"
)
def test_a_server_found_dead_keeps_the_cpu_its_kernel_burnt(make_hub):
    """The server dies (killed) right after the burn: its processes can no longer be read, but the
    kernel's count of the account's cgroup still has everything they used."""
    import signal
    import time

    from mlworkshop import cgroups

    if cgroups.detect() is None:
        pytest.skip("no cgroup controllers mounted here")
    hub = make_hub(
        **{"usage.sample_every": 3600, "usage.service_port": free_port(), "culler.enabled": "false"}
    )
    extra = hub.site / "jupyterhub_config.d"
    extra.mkdir(exist_ok=True)
    (extra / "poll.py").write_text(
        "c.Spawner.poll_interval = 1\n"
    )  # the hub notices a dead server within 1 s
    mlw(hub.site, "user", "add", "alice", "--password-stdin", input=ALICE_PW + "\n")
    hub.start()
    alice = hub.browser()
    assert alice.login("alice", ALICE_PW).status_code == 302
    token = alice.new_token("alice")
    alice.start_server("alice")
    server = Server(hub.url, "alice", token)

    asyncio.run(server.run_code(BURN, timeout=120, shutdown=False))
    used = account_cpu(hub.prefix + "alice")
    os.killpg(
        session_pid(hub, "alice"), signal.SIGKILL
    )  # the server dies (its kernel lives on, idle)
    deadline = time.monotonic() + 60
    while alice.api("GET", "/users/alice").json()["servers"]:
        assert time.monotonic() < deadline, "the hub did not notice the dead server"
        time.sleep(0.25)

    cpu, samples = recorded_cpu(hub, "alice", reason="died")
    assert samples >= 1, "no sample at all: the session's CPU is lost"
    assert used - 0.05 <= cpu <= used + 1.0, (cpu, used)
