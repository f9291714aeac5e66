"""Attacks on the machine's shared resources by a student of a real root hub (issue 11, item 4).

Each attack runs as the student (code in her own kernel, or `runuser` as her account) and must be
stopped by the kernel's own accounting (cgroups): a server limited to 1 GiB cannot touch 5 GiB;
eight busy processes of one student cannot crowd out another student's one; a forked kernel's
fork bomb ends at the pids limit; an idle connection to the kernel socket is closed.

No timing assertions: CPU is compared as *shares* of the CPU time the students' processes were
given (from /proc), and deadlines only bound how long a correct result may take to show.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time

import httpx
import pytest

from tests.integration.hubctl import Server, execute_request, free_port, mlw

ALICE_PW = "alice-Secret-42"
BOB_PW = "bob-Secret-42x"
USAGE = "/services/usage"


def limited_hub(make_hub, **extra):
    """A hub whose CPU-only servers have 1 GiB and at most 100 processes (threads count too)."""
    hub = make_hub(
        **{
            "culler.enabled": "false",
            "usage.service_port": free_port(),
            "accelerators.profiles.cpu.mem_limit": "1G",
            "spawner.local.max_processes": "100",
            **extra,
        }
    )
    mlw(hub.site, "user", "add", "alice", "--password-stdin", input=ALICE_PW + "\n")
    mlw(hub.site, "user", "add", "bob", "--password-stdin", input=BOB_PW + "\n")
    hub.start()
    return hub


def student(hub, name: str, password: str) -> tuple[Server, object]:
    browser = hub.browser()
    assert browser.login(name, password).status_code == 302
    browser.start_server(name)
    return Server(hub.url, name, browser.new_token(name)), browser


def logs(hub) -> str:
    """The hub's log and every user's server log (<site>/logs/): where a server's lines go."""
    files = sorted(p for p in (hub.site / "logs").rglob("*") if p.is_file() and p != hub.log_path)
    return hub.log() + "".join(p.read_text(errors="replace") for p in files)


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes, from /proc (what the kernel accounted to each)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def run_expecting_death(server: Server, code: str, timeout: float = 120) -> tuple[str, str]:
    """Run code in a new kernel: ("died", output) when the kernel dies before finishing (the
    server reports it restarting), ("finished", output) when it completes."""
    import websockets

    kernel = server.client.post(f"{server.prefix}/api/kernels", json={"name": "python3"})
    assert kernel.status_code == 201, kernel.text
    kernel_id = kernel.json()["id"]
    ws_url = server.base.replace("http", "ws") + f"{server.prefix}/api/kernels/{kernel_id}/channels"
    output: list[str] = []
    try:
        async with websockets.connect(
            ws_url, additional_headers={"Authorization": f"token {server.token}"}, open_timeout=60
        ) as ws:
            msg_id, request = execute_request(code)
            await ws.send(request)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                msg = json.loads(
                    await asyncio.wait_for(ws.recv(), max(1, deadline - time.monotonic()))
                )
                kind = msg["msg_type"]
                if kind == "status" and msg["content"]["execution_state"] in ("restarting", "dead"):
                    return "died", "".join(output)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if kind == "stream":
                    output.append(msg["content"]["text"])
                elif kind == "error":
                    output.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    return "finished", "".join(output)
            raise AssertionError(
                f"the kernel neither finished nor died within {timeout}s: {''.join(output)}"
            )
    finally:
        server.client.delete(f"{server.prefix}/api/kernels/{kernel_id}")


TOUCH_5_GIB = """
import mmap
size = 5 * 2**30
m = mmap.mmap(-1, size)
for offset in range(0, size, 4096):
    m[offset] = 1
print('touched', size // 2**20, 'MiB', flush=True)
"""


@pytest.mark.parametrize("start", ["forked", "cold"])
async def test_memory_beyond_the_limit_kills_the_kernel_and_says_why(make_hub, start):
    # forked: server and kernel forked by the fork server; cold: both fresh processes (Popen)
    hub = limited_hub(make_hub, **({"spawner.local.preload": "false"} if start == "cold" else {}))
    alice, browser = student(hub, "alice", ALICE_PW)
    limits = httpx.get(
        hub.url + USAGE + "/api/users/alice/limits",
        timeout=30,
        headers={"Authorization": f"token {alice.token}"},
    ).json()
    assert limits["memory_limit_gib"] == 1.0, limits  # what she is told is what is enforced below

    outcome, output = await run_expecting_death(alice, TOUCH_5_GIB)
    assert outcome == "died" and "touched" not in output, (outcome, output)
    # her server survives its kernel, and she is told why the kernel died: in her server's log
    # (our kernel provisioner, the default where kernels are forked) ...
    assert alice.contents("GET", "").status_code == 200
    if start == "forked":
        deadline = time.monotonic() + 30
        while "out-of-memory killer" not in logs(hub) and time.monotonic() < deadline:
            time.sleep(0.25)
        assert (
            "was killed by the out-of-memory killer: this server and its kernels may use 1 GiB"
            in logs(hub)
        ), logs(hub)[-3000:]
    # ... and by the usage API she reads her limits from
    limits = httpx.get(
        hub.url + USAGE + "/api/users/alice/limits",
        timeout=30,
        headers={"Authorization": f"token {alice.token}"},
    ).json()
    assert limits["oom_kills"] >= 1 and "out of memory" in limits["message"], limits
    page = browser.client.get(USAGE + "/me")  # her usage page says it too
    assert (
        page.status_code == 200
        and "Your server ran out of memory within its limit of 1 GiB" in page.text
    ), page.text[:2000]


START_BUSY = """
import subprocess, sys
procs = [subprocess.Popen([sys.executable, '-c', 'while True: pass'], start_new_session=True) for _ in range({n})]
print(' '.join(str(p.pid) for p in procs))
"""


async def test_a_cpu_hog_gets_no_more_than_its_share(make_hub):
    hub = limited_hub(make_hub)
    alice, _ = student(hub, "alice", ALICE_PW)
    bob, _ = student(hub, "bob", BOB_PW)
    hog = [int(p) for p in (await alice.run_code(START_BUSY.format(n=8))).split()]
    job = [int(p) for p in (await bob.run_code(START_BUSY.format(n=1))).split()]
    try:
        # both students' processes are their own accounts' (not root's, not each other's)
        assert {os.stat(f"/proc/{p}").st_uid for p in hog} != {
            os.stat(f"/proc/{p}").st_uid for p in job
        }
        start_hog, start_job = cpu_seconds(hog), cpu_seconds(job)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the two were given 12 CPU-seconds between them
            hog_used, job_used = cpu_seconds(hog) - start_hog, cpu_seconds(job) - start_job
            if hog_used + job_used >= 12:
                break
            time.sleep(0.5)
        running = [p for p in hog + job if os.path.exists(f"/proc/{p}")]
        assert running == hog + job, "a busy process ended while it was measured"
        share = job_used / (hog_used + job_used)
        # Per process (no cgroups) bob's one process gets 1/9 of what the two are given; per
        # user, he gets his half of the machine's two cores, or at least a third of the total
        # while the scheduler balances alice's eight processes over both cores.
        assert share >= 0.3, (
            f"bob's job got {share:.0%} of the CPU time (alice {hog_used:.1f} s, bob {job_used:.1f} s)"
        )
    finally:
        for pid in hog + job:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


FORK_BOMB = """
import os, signal, time
pids, error = [], None
for _ in range(400):
    try:
        pid = os.fork()
    except OSError as exc:
        error = exc
        break
    if pid == 0:
        time.sleep(300)
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.kill(pid, signal.SIGKILL)
for pid in pids:
    os.waitpid(pid, 0)
print(len(pids), type(error).__name__)
"""


async def test_a_fork_bomb_in_a_forked_kernel_ends_at_the_pids_limit(make_hub):
    hub = limited_hub(make_hub)
    alice, _ = student(hub, "alice", ALICE_PW)
    # the kernel that runs it is one the fork server forked (the path that ignored RLIMIT_NPROC)
    assert (await alice.run_code("print('ready')")).strip() == "ready"
    assert "Kernel forked by the fork server" in logs(hub)
    forked, error = (await alice.run_code(FORK_BOMB, timeout=120)).split()
    assert int(forked) < 100 and error == "BlockingIOError", (forked, error)
    assert (await alice.run_code("print(6 * 7)")).strip() == "42"  # and she can go on working


IDLE_CLIENT = r"""
import socket, sys, threading, time
path, results = sys.argv[1], {}

def hold(name, first_bytes):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    if first_bytes:
        sock.sendall(first_bytes)  # half a request, then nothing
    sock.settimeout(90)
    try:
        while sock.recv(4096):
            pass
        results[name] = 'closed'
    except socket.timeout:
        results[name] = 'still open after 90 s'

threads = [threading.Thread(target=hold, args=('idle', b'')),
           threading.Thread(target=hold, args=('half', b'{"argv": ["python"'))]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(results['idle'], results['half'], sep=',')
"""


async def test_an_idle_connection_to_the_kernel_socket_is_closed(make_hub):
    hub = limited_hub(make_hub)
    student(hub, "alice", ALICE_PW)  # her account exists: the socket forks a child for her
    account = hub.prefix + "alice"
    result = subprocess.run(
        [
            "runuser",
            "-u",
            account,
            "--",
            "/usr/bin/python3",
            "-c",
            IDLE_CLIENT,
            str(hub.site / "run" / "kernels.sock"),
        ],
        capture_output=True,
        text=True,
        timeout=150,
        cwd="/",
    )
    assert result.stdout.strip() == "closed,closed", (result.stdout, result.stderr)
