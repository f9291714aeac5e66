"""A student forges or erases the hub's log through descriptors their processes inherited
(issue 11, item 5).

The hub runs as tests/integration/hubctl.py runs it: its stdout and stderr are the hub log file.
From the student's own kernel, the attack writes a forged admin line to every descriptor it holds
(walking /proc/self/fd, fds 1 and 2 among them) after truncating each. Root then checks the
student's server and kernel: no descriptor of theirs is the hub's log or a pipe or socket the hub
or its fork server holds. The hub log keeps every byte it had and never shows the forged line;
the student's own log (<site>/logs/users/<name>.log) has it, with the server's output, and
`mlworkshop logs NAME` shows both. Servers forked by the fork server and servers started cold.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets

import psutil
import pytest

from tests.integration.hubctl import Server, mlw

PASSWORD = "Forge-the-log-77"

# Run in the student's kernel. Sockets and epoll/eventfd descriptors are the kernel's own zmq
# machinery and files in the student's home are their own (IPython's history): writing there
# would only break the kernel. Everything else gets truncated and then the forged line: a
# regular file, a pipe, a terminal is where a hub's log would be.
ATTACK = r"""
import json, os
forged = FORGED
report = {"pid": os.getpid(), "fds": {}, "written": [], "truncated": []}
for name in os.listdir("/proc/self/fd"):
    fd = int(name)
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
        st = os.fstat(fd)
    except OSError:
        continue
    report["fds"][fd] = {"target": target, "dev": st.st_dev, "ino": st.st_ino}
    if target.startswith(("socket:", "anon_inode:", os.environ["HOME"] + "/")):
        continue
    try:
        os.ftruncate(fd, 0)
        report["truncated"].append(fd)
    except OSError:
        pass
    try:
        os.write(fd, forged.encode())
        report["written"].append(fd)
    except OSError:
        pass
print("REPORT " + json.dumps(report))
"""


def _fd_targets(pid: int) -> dict[int, str]:
    fds = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
    return fds


def _hub_side_objects(hub_pid: int) -> set[str]:
    """Every pipe and socket open in the hub, its proxy, services and fork server (root's side)."""
    objects: set[str] = set()
    hub = psutil.Process(hub_pid)
    for proc in [hub, *hub.children(recursive=True)]:
        try:
            if proc.uids().real != 0:
                continue
            objects |= {
                t for t in _fd_targets(proc.pid).values() if t.startswith(("pipe:", "socket:"))
            }
        except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
            continue
    return objects


def _shared_with_hub(targets: dict[int, str], hub_objects: set[str]) -> dict[int, str]:
    return {fd: t for fd, t in targets.items() if t in hub_objects}


@pytest.mark.parametrize("preload", [True, False], ids=["forked", "cold"])
async def test_student_cannot_forge_or_erase_the_hub_log(make_hub, preload):
    hub = make_hub(**{"spawner.local.preload": str(preload).lower()})
    mlw(hub.site, "user", "add", "mallory", "--password-stdin", input=PASSWORD + "\n")
    hub.start()
    browser = hub.browser()
    assert browser.login("mallory", PASSWORD).status_code == 302
    browser.start_server("mallory")
    server = Server(hub.url, "mallory", browser.new_token("mallory"))
    account = pwd.getpwnam(hub.prefix + "mallory")
    user_log = hub.site / "logs" / "users" / "mallory.log"
    hub_log = os.stat(hub.log_path)

    # the student's server, before any kernel: the one process of the account
    processes = [p for p in psutil.process_iter() if p.uids().real == account.pw_uid]
    assert len(processes) == 1, processes
    server_pid = processes[0].pid
    parent = psutil.Process(processes[0].ppid())
    assert ("mlworkshop.fastpath.server" in " ".join(parent.cmdline())) == preload, parent.cmdline()
    hub_objects = _hub_side_objects(hub.proc.pid)
    server_fds = _fd_targets(server_pid)
    assert server_fds[0] == "/dev/null", server_fds
    assert user_log.exists(), f"no per-user log at {user_log}: the server writes to {server_fds}"
    log_stat = os.stat(user_log)
    for fd in (1, 2):
        st = os.stat(f"/proc/{server_pid}/fd/{fd}")
        assert (st.st_dev, st.st_ino) == (log_stat.st_dev, log_stat.st_ino), (
            f"server fd {fd}: {server_fds[fd]}"
        )
    for fd in server_fds:
        try:
            st = os.stat(f"/proc/{server_pid}/fd/{fd}")
        except OSError:
            continue
        assert (st.st_dev, st.st_ino) != (hub_log.st_dev, hub_log.st_ino), (
            f"the server holds the hub log as fd {fd}"
        )
    assert _shared_with_hub(server_fds, hub_objects) == {}, (
        "the server holds a pipe or socket of the hub's"
    )
    assert (log_stat.st_uid, log_stat.st_mode & 0o777) == (0, 0o640)

    shown = mlw(hub.site, "logs", "mallory")
    assert "Jupyter Server" in shown.stdout, (
        f"the server's own output is in the user's log: {shown.stdout}"
    )

    before = hub.log()
    forged = f"[I 2026-01-01 00:00:00.000 JupyterHub app:1] Admin prof: approve {secrets.token_hex(4)}-mallory\n"
    output = await server.run_code(ATTACK.replace("FORGED", repr(forged)))
    # the forged text the attack wrote to the kernel's stdout comes back through ipykernel's
    # capture of fd 1 at its own pace, and can land right after the report, on its line (seen
    # once in a full run): the report is the JSON object the line begins with
    line = next(line for line in output.splitlines() if line.startswith("REPORT "))
    report, _ = json.JSONDecoder().raw_decode(line[len("REPORT ") :])
    kernel_fds = {int(fd): info for fd, info in report["fds"].items()}
    assert report["written"], f"the attack wrote to no descriptor: {kernel_fds}"
    for fd, info in kernel_fds.items():
        assert (info["dev"], info["ino"]) != (hub_log.st_dev, hub_log.st_ino), (
            f"the kernel holds the hub log as fd {fd}"
        )
    assert _shared_with_hub({fd: i["target"] for fd, i in kernel_fds.items()}, hub_objects) == {}, (
        kernel_fds
    )

    after = hub.log()
    assert forged.strip() not in after, "a student forged a line in the hub's log"
    assert after.startswith(before), "a student truncated or overwrote the hub's log"
    assert forged.strip() in user_log.read_text(errors="replace"), (
        "the forged text is in the student's own log"
    )

    shown = mlw(hub.site, "logs", "mallory", "--lines", "1000")
    assert forged.strip() in shown.stdout, shown.stdout
