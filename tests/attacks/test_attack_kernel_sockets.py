"""A student reads another student's cell outputs by subscribing to their kernel's IOPub socket.

ZeroMQ's IOPub is a publisher: a subscriber needs no key, only a way to connect. jupyter_client's
default puts every kernel on 127.0.0.1 TCP ports, which every local account can reach. The spy
here runs as mallory (`runuser`, as from her terminal): it subscribes to every listening TCP port
on the machine and every Unix socket path the machine lists, while alice's kernel prints a
secret, and reports whether any of it reached her. mlworkshop puts a local server's kernels on
Unix sockets in a 0700 folder of the student's (mlworkshop/kernel_sockets.py). Servers forked by
the fork server and servers started cold.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import websockets

from mlworkshop.kernel_sockets import FOLDER_PREFIX
from tests.integration.hubctl import Server, execute, execute_request, mlw

PASSWORD = "Listen-in-on-43"

# Run as mallory: subscribe to everything that listens, for `seconds`, then say what arrived.
SPY = r"""
import json, os, sys, time, zmq
marker, seconds = sys.argv[1].encode(), float(sys.argv[2])

def tcp_ports():
    ports = set()
    for table, loopbacks in (("/proc/net/tcp", ("0100007F", "00000000")),
                             ("/proc/net/tcp6", ("00000000000000000000000001000000",
                                                 "00000000000000000000000000000000"))):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, port = local.split(":")
            if state == "0A" and address in loopbacks:  # LISTEN, on loopback or everywhere
                ports.add(int(port, 16))
    return sorted(ports)

def unix_paths():
    paths = set()
    for line in open("/proc/net/unix").read().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7].startswith("/"):
            paths.add(fields[7])
    return sorted(paths)

context = zmq.Context()
poller = zmq.Poller()
endpoints = [f"tcp://127.0.0.1:{p}" for p in tcp_ports()] + [f"ipc://{p}" for p in unix_paths()]
for endpoint in endpoints:
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.LINGER, 0)
    try:
        sub.connect(endpoint)
    except zmq.ZMQError:
        sub.close()
        continue
    poller.register(sub, zmq.POLLIN)
print("READY", flush=True)
seen, messages, deadline = False, 0, time.monotonic() + seconds
while time.monotonic() < deadline:
    for sock, _ in poller.poll(100):
        frames = sock.recv_multipart()
        messages += 1
        seen = seen or any(marker in frame for frame in frames)
print(json.dumps({"endpoints": endpoints, "messages": messages, "seen": seen}), flush=True)
"""


def _alice_and_mallory(make_hub, preload: bool):
    """A root hub with two students whose servers run; alice's server, reached with her token."""
    hub = make_hub(**{"spawner.local.preload": str(preload).lower()})
    for name in ("alice", "mallory"):
        mlw(hub.site, "user", "add", name, "--password-stdin", input=PASSWORD + "\n")
    hub.start()
    browsers = {name: hub.browser() for name in ("alice", "mallory")}
    for name, browser in browsers.items():
        assert browser.login(name, PASSWORD).status_code == 302
        browser.start_server(name)
    return hub, Server(hub.url, "alice", browsers["alice"].new_token("alice")), browsers["alice"]


def _as_mallory(hub, code: str, *args: str) -> list[str]:
    """The command line that runs Python `code` as mallory's account (as from her terminal)."""
    return ["runuser", "-u", hub.prefix + "mallory", "--", sys.executable, "-c", code, *args]


def _kernel_of(hub, alice: Server, ids: list | None = None):
    """A new kernel of alice's, its websocket open (as a notebook of hers holds it); its id is
    appended to `ids`."""
    kernel = alice.client.post(f"{alice.prefix}/api/kernels", json={"name": "python3"})
    assert kernel.status_code == 201, kernel.text
    if ids is not None:
        ids.append(kernel.json()["id"])
    path = f"{alice.prefix}/api/kernels/{kernel.json()['id']}/channels"
    return websockets.connect(
        hub.url.replace("http", "ws") + path,
        additional_headers={"Authorization": f"token {alice.token}"},
    )


@pytest.mark.parametrize("preload", [True, False], ids=["forked", "cold"])
async def test_student_cannot_read_another_students_kernel_output(make_hub, preload):
    hub, alice, alice_browser = _alice_and_mallory(make_hub, preload)
    alice_uid = pwd.getpwnam(hub.prefix + "alice").pw_uid
    marker = f"alice-secret-{secrets.token_hex(6)}"

    ids = []
    async with _kernel_of(hub, alice, ids) as ws:
        assert "ready" in await execute(ws, "print('ready')")  # alice's kernel is up and bound
        folders = [f.parent for f in Path("/tmp").glob(f"{FOLDER_PREFIX}*/kernel-{ids[0]}.json")]
        assert len(folders) == 1, "alice's kernel's connection file is not in a folder of ours"
        info = os.lstat(folders[0])
        # 0700 (jupyter_client adds the sticky bit to a connection file's folder: kept from cleaners)
        assert (info.st_uid, info.st_mode & 0o777) == (alice_uid, 0o700)
        assert any(stat.S_ISSOCK(os.lstat(e).st_mode) for e in folders[0].iterdir())
        spy = subprocess.Popen(
            _as_mallory(hub, SPY, marker, "12"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd="/",
        )
        try:
            assert spy.stdout.readline().strip() == "READY", spy.stderr.read()
            time.sleep(1)  # ZeroMQ connects in the background: let every subscription arrive
            printed = await execute(
                ws,
                f"import time\nfor _ in range(20):\n    print({marker!r}, flush=True)\n"
                "    time.sleep(0.25)\n",
            )
            out, err = spy.communicate(timeout=60)
        finally:
            spy.kill()
    assert marker in printed, "alice's own kernel shows her output"
    report = json.loads(out.strip().splitlines()[-1])
    assert any(e.startswith("tcp://") for e in report["endpoints"]), (
        f"the spy found nothing listening (the hub and servers do): {report} {err}"
    )
    assert report["seen"] is False, (
        f"mallory read alice's kernel output by subscribing to {len(report['endpoints'])} sockets"
    )
    alice_browser.stop_server("alice")
    assert not folders[0].exists(), "a stopped server left its kernels' folder"


# Run as mallory after SPY's tcp_ports(): every listening loopback TCP port that speaks the Debug Adapter Protocol gets
# initialize, attach and an evaluate of the kernel user's uid; prints the answers that succeeded.
DAP_SPY = r"""
import json, socket, sys

def send(sock, seq, command, arguments):
    body = json.dumps({"seq": seq, "type": "request", "command": command, "arguments": arguments})
    sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body.encode())

def answers(sock, wait):
    sock.settimeout(wait)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    found = []
    for part in data.split(b"Content-Length:")[1:]:
        try:
            found.append(json.loads(part.split(b"\r\n\r\n", 1)[1]))
        except (IndexError, ValueError):
            pass
    return found

report = {"ports": tcp_ports(), "adapters": [], "evaluated": []}
for port in report["ports"]:
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=1)
    except OSError:
        continue
    with sock:
        send(sock, 1, "initialize", {"adapterID": "python", "clientID": "mallory"})
        if not any(m.get("command") == "initialize" for m in answers(sock, 1)):
            continue
        report["adapters"].append(port)
        send(sock, 2, "attach", {"justMyCode": False})
        answers(sock, 2)
        send(sock, 3, "evaluate", {"expression": "__import__('os').getuid()", "context": "repl"})
        for m in answers(sock, 2):
            if m.get("command") == "evaluate" and m.get("success"):
                report["evaluated"].append(m["body"]["result"])
print(json.dumps(report), flush=True)
"""


async def _debug_request(ws, command: str, arguments: dict, seq: int) -> dict:
    """What JupyterLab sends when the debugger is switched on or off: the kernel's reply."""
    msg_id, text = execute_request("")
    message = json.loads(text)
    message["header"]["msg_type"], message["channel"] = "debug_request", "control"
    message["content"] = {"type": "request", "seq": seq, "command": command, "arguments": arguments}
    await ws.send(json.dumps(message))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        reply = json.loads(await ws.recv())
        if (
            reply.get("parent_header", {}).get("msg_id") == msg_id
            and reply["msg_type"] == "debug_reply"
        ):
            return reply["content"]
    raise AssertionError(f"no debug_reply to {command}")


@pytest.mark.parametrize("preload", [True, False], ids=["forked", "cold"])
async def test_student_cannot_run_code_in_another_students_kernel_through_its_debugger(
    make_hub, preload
):
    hub, alice, _ = _alice_and_mallory(make_hub, preload)
    alice_uid = pwd.getpwnam(hub.prefix + "alice").pw_uid

    specs = alice.client.get(f"{alice.prefix}/api/kernelspecs").json()
    async with _kernel_of(hub, alice) as ws:
        assert "ready" in await execute(ws, "print('ready')")
        # alice switches the debugger on, then off again (as JupyterLab's switch does)
        replies = [
            await _debug_request(ws, "initialize", {"adapterID": "python", "clientID": "lab"}, 1),
            await _debug_request(ws, "attach", {}, 2),
            await _debug_request(
                ws, "disconnect", {"restart": False, "terminateDebuggee": False}, 3
            ),
        ]
        spy_code = SPY.split("context = zmq.Context()")[0] + DAP_SPY
        spy = subprocess.run(
            _as_mallory(hub, spy_code, "x", "0"),
            capture_output=True,
            text=True,
            cwd="/",
            timeout=300,
        )
        assert "ready" in await execute(ws, "print('ready')"), "alice's kernel still works"
    assert spy.returncode == 0, spy.stderr
    report = json.loads(spy.stdout.strip().splitlines()[-1])
    assert report["ports"], f"the spy found nothing listening (the hub and servers do): {report}"
    assert str(alice_uid) not in report["evaluated"], (
        f"mallory ran code as alice through her kernel's debugger: {report}"
    )
    assert replies[0]["success"] is False and "debugger is off" in replies[0]["message"], replies
    assert specs["kernelspecs"]["python3"]["spec"]["metadata"].get("debugger") is False, (
        "JupyterLab would show the debugger switch"
    )
