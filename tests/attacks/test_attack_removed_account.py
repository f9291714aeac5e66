"""A removed student must not live on (issue 11, item 6): no process of hers survives `user
remove`, the fork server forks nothing more for her uid, and a new account of the same name is
a new person (new uid, fresh home) her old uid cannot read. `--delete-files` that could not
delete everything says so, with a failing exit status.
"""

from __future__ import annotations

import pwd
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from mlworkshop.site import Site
from tests.integration.hubctl import mlw

PASSWORD = "Mallory-Pass-42"
NEWCOMER = "Newcomer-Pass-42"

# Run as the removed uid: ask the fork server for a kernel, as her server's provisioner would.
ASK_FOR_A_KERNEL = r"""
import asyncio, sys
from mlworkshop.fastpath.provisioner import ForkRefused, fork_kernel

async def main():
    try:
        kernel = await fork_kernel(sys.argv[1], [sys.executable, "-m", "ipykernel_launcher", "-f",
                                   "/nonexistent.json"], {"PATH": "/usr/bin:/bin"}, "/")
    except ForkRefused as exc:
        print("REFUSED", exc)
    else:
        print("FORKED", kernel.pid)
        kernel.kill()

asyncio.run(main())
"""


def as_uid(uid: int, gid: int, *command: str) -> subprocess.CompletedProcess:
    """Run as a bare uid (what is left of a removed account has no name to runuser)."""
    return subprocess.run(
        ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *command],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=60,
    )


def live_processes(uid: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["uids", "status"]):
        uids = proc.info["uids"]
        if uids and uid in uids and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def student_with_a_server(hub, name: str, password: str):
    mlw(hub.site, "user", "add", name, "--password-stdin", input=password + "\n")
    if hub.proc is None or hub.proc.poll() is not None:
        hub.start()
    browser = hub.browser()
    assert browser.login(name, password).status_code == 302
    browser.start_server(name)
    return browser


def remove(hub, name: str, how: str) -> None:
    if how == "cli":
        removed = mlw(hub.site, "user", "remove", name, check=False)
        assert removed.returncode == 0, removed.stdout + removed.stderr
    else:  # an admin deletes the user on the hub's admin page (its REST API)
        token = Site(hub.site).secret("cli_api_token")
        response = httpx.delete(
            f"{hub.url}/hub/api/users/{name}",
            headers={"Authorization": f"token {token}"},
            timeout=120,
        )
        assert response.status_code == 204, response.text


@pytest.mark.parametrize("how", ["cli", "hub api"])
def test_a_removed_account_has_no_process_left_and_gets_no_kernel(make_hub, how):
    hub = make_hub()
    student_with_a_server(hub, "mallory", PASSWORD)
    account = hub.prefix + "mallory"
    entry = pwd.getpwnam(account)
    uid, gid = entry.pw_uid, entry.pw_gid
    # a process of hers that leaves her server's session: detached, in a session of its own
    subprocess.run(
        ["runuser", "-u", account, "--", "setsid", "-f", "sleep", "3600"], check=True, timeout=30
    )
    deadline = time.monotonic() + 30
    while not any(p.name() == "sleep" for p in live_processes(uid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(p.name() == "sleep" for p in live_processes(uid))

    remove(hub, "mallory", how)

    left = live_processes(uid)
    assert not left, (
        f"processes of the removed uid {uid} still run: {[(p.pid, p.cmdline()) for p in left]}"
    )
    asked = as_uid(
        uid, gid, sys.executable, "-c", ASK_FOR_A_KERNEL, str(hub.site / "run" / "kernels.sock")
    )
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.startswith("REFUSED"), asked.stdout
    subprocess.run(
        ["pkill", "-KILL", "-u", str(uid)], capture_output=True
    )  # a failed test leaves nothing


def test_a_new_account_with_a_removed_name_is_a_new_person(make_hub):
    hub = make_hub()
    old = student_with_a_server(hub, "mallory", PASSWORD)
    account = hub.prefix + "mallory"
    entry = pwd.getpwnam(account)
    old_uid, old_gid = entry.pw_uid, entry.pw_gid
    home = hub.site / "users" / "mallory"
    planted = subprocess.run(
        [
            "runuser",
            "-u",
            account,
            "--",
            "sh",
            "-c",
            f"echo old > {home / 'work' / 'old.txt'} && chmod 777 {home / 'work'} {home}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert planted.returncode == 0, planted.stderr
    old.stop_server("mallory")
    mlw(hub.site, "user", "remove", "mallory")

    newcomer = student_with_a_server(hub, "mallory", NEWCOMER)
    new_uid = pwd.getpwnam(account).pw_uid
    assert new_uid != old_uid, "the new mallory got the removed account's uid"
    assert new_uid > old_uid  # never handed out before: above every uid given so far
    write = subprocess.run(
        ["runuser", "-u", account, "--", "sh", "-c", f"echo new > {home / 'work' / 'new.txt'}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert write.returncode == 0, write.stderr
    assert not (home / "work" / "old.txt").exists(), "the new mallory was given the old one's home"
    for attempt in (["cat", str(home / "work" / "new.txt")], ["ls", str(home / "work")]):
        result = as_uid(old_uid, old_gid, *attempt)
        assert result.returncode != 0 and "Permission denied" in result.stderr, (attempt, result)
    newcomer.stop_server("mallory")


def test_delete_files_that_cannot_delete_everything_fails_and_says_what(make_hub):
    hub = make_hub()
    student_with_a_server(hub, "mallory", PASSWORD).stop_server("mallory")
    stuck = hub.site / "users" / "mallory" / "work" / "stuck.txt"
    stuck.write_text("x")
    subprocess.run(["chattr", "+i", str(stuck)], check=True)  # not even root may delete it
    try:
        removed = mlw(hub.site, "user", "remove", "mallory", "--delete-files", check=False)
        assert removed.returncode != 0, removed.stdout
        assert str(stuck) in removed.stderr, removed.stderr
        assert "Traceback" not in removed.stdout + removed.stderr
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], capture_output=True)
    # what could be done was done: her hand-in folder and her system account are gone
    assert not (hub.site / "submissions" / "mallory").exists()
    try:
        pwd.getpwnam(hub.prefix + "mallory")
        raise AssertionError("the system account was kept")
    except KeyError:
        pass
