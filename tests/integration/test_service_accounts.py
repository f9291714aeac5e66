"""A root hub's helpers run without root (issue 11, item 7a): the proxy, the idle culler and the
usage service are processes of unprivileged system accounts of their own, and everything still
works: a login through the proxy, a server start, the culler's and the usage service's API calls,
usage samples of the student's processes written to a database the usage account owns.
"""

from __future__ import annotations

import os
import pwd
import stat

import psutil
import pytest

from mlworkshop.hub.service_accounts import CULLER_ACCOUNT, PROXY_ACCOUNT, USAGE_ACCOUNT

from .test_usage_hub import ADMIN_PW, ALICE_PW, UsageAPI, login, start_hub, usage_hub, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="helpers switch accounts only under a root hub"),
]

NET_BIND_SERVICE = 1 << 10


def _helpers(hub) -> dict[str, psutil.Process]:
    found = {}
    for proc in psutil.Process(hub.proc.pid).children(recursive=True):
        try:
            cmdline = " ".join(proc.cmdline())
        except psutil.NoSuchProcess:
            continue
        for key, marker in (
            ("proxy", "configurable-http-proxy"),
            ("culler", "mlworkshop.hub.culler"),
            ("usage", "mlworkshop.usage.service"),
        ):
            if marker in cmdline and "setpriv" not in proc.name():
                found[key] = proc
    return found


def _capabilities(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/status") as status:
        return {
            line.split(":")[0]: int(line.split()[1], 16)
            for line in status
            if line.startswith("Cap")
        }


def test_proxy_culler_and_usage_service_run_as_their_own_unprivileged_accounts(make_hub):
    hub = usage_hub(make_hub, **{"culler.enabled": "true", "culler.every": 10})
    start_hub(hub)
    helpers = wait_for(
        lambda: (found := _helpers(hub)) and len(found) == 3 and found, 30, what="three helpers"
    )
    for key, account in (
        ("proxy", PROXY_ACCOUNT),
        ("culler", CULLER_ACCOUNT),
        ("usage", USAGE_ACCOUNT),
    ):
        proc = helpers[key]
        entry = pwd.getpwnam(account)
        assert entry.pw_uid != 0 and entry.pw_shell.endswith(("nologin", "false")), entry
        assert set(proc.uids()) == {entry.pw_uid}, (key, proc.uids())  # real, effective and saved
        assert set(proc.gids()) == {entry.pw_gid}, (key, proc.gids())
        assert proc.username() == account
    # the proxy keeps exactly one capability: binding ports below 1024 (the proxy API's port is 882)
    caps = _capabilities(helpers["proxy"].pid)
    assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == NET_BIND_SERVICE, caps
    assert not any(_capabilities(helpers[key].pid)["CapEff"] for key in ("culler", "usage"))

    # ... and everything works: a login through the proxy, a start, the usage API
    teacher = login(hub, "teacher", ADMIN_PW)
    alice = login(hub, "alice", ALICE_PW)
    alice.start_server("alice")
    lab = alice.client.get("/user/alice/lab")  # through the proxy, with the browser's OAuth dance
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    admin_api = UsageAPI(hub, teacher.new_token("teacher"))
    [session] = admin_api.json("/api/sessions", params={"user": "alice", "state": "open"})
    # the usage service (not root) samples alice's processes and writes them to its database
    samples = wait_for(
        lambda: admin_api.json(f"/api/sessions/{session['id']}/samples"), 60, what="samples"
    )
    assert samples[-1]["mem_bytes"] > 30 * 2**20, samples[-1]
    # the culler asked the hub about servers as itself (its token works under its account)
    wait_for(lambda: "(idle-culler@" in hub.log(), 30, what="the culler's API calls")
    alice.stop_server("alice")

    # the usage database lives in <site>/usage/, the usage account's own folder, not in root's state/
    usage_uid = pwd.getpwnam(USAGE_ACCOUNT).pw_uid
    folder = (hub.site / "usage").lstat()
    assert (
        stat.S_ISDIR(folder.st_mode)
        and folder.st_uid == usage_uid
        and stat.S_IMODE(folder.st_mode) == 0o700
    )
    assert (hub.site / "usage" / "usage.sqlite").stat().st_uid == usage_uid
    assert not (hub.site / "state" / "usage.sqlite").exists()
    assert stat.S_IMODE((hub.site / "state").stat().st_mode) == 0o700
