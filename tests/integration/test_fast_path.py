"""The class-rush fast path is still correct: forked servers are each student's own, queued
spawns succeed and say where they are in line. (No timing assertions: bench/rush.py measures.)
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import uuid

import httpx
import psutil
import pytest
import websockets

from mlworkshop.userlogs import user_log_path

from .hubctl import Server, execute, execute_request, lab_page_config, memory_contains, mlw

pytestmark = pytest.mark.integration

PASSWORD = "Fast-path-pass-7"


async def test_forked_servers_belong_to_their_students(make_hub):
    if os.geteuid() != 0:
        pytest.skip("per-student accounts need a root hub")
    hub = make_hub()
    for name in ("una", "vic"):
        mlw(hub.site, "user", "add", name, "--password-stdin", input=PASSWORD + "\n")
    hub.start()
    servers = {}
    for name in ("una", "vic"):
        browser = hub.browser()
        assert browser.login(name, PASSWORD).status_code == 302
        model = browser.start_server(name)
        servers[name] = Server(hub.url, name, browser.new_token(name))
        assert model["ready"]

    # a forked kernel reports once its event loop listens, and so starts out idle: the websocket's
    # first nudge has no "starting" to poll away, 50 ms at a time (fastpath/kernel_app.py)
    una = servers["una"]
    kernel = una.client.post(f"{una.prefix}/api/kernels", json={"name": "python3"})
    assert kernel.status_code == 201 and kernel.json()["execution_state"] == "idle", kernel.text
    kernel_id = kernel.json()["id"]
    channels = (
        una.base.replace("http", "ws")
        + f"{una.prefix}/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"
    )
    auth = {"Authorization": f"token {una.token}"}
    async with websockets.connect(channels, additional_headers=auth) as ws:
        msg_id, request = execute_request("print(6 * 7)")
        await ws.send(request)
        seen = []
        while not (
            seen
            and seen[-1]["msg_type"] == "status"
            and seen[-1]["parent_header"].get("msg_id") == msg_id
            and seen[-1]["content"]["execution_state"] == "idle"
        ):
            seen.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
    # the same session again (a browser back after a dropped connection): jupyter_server hands it
    # its old, buffered channels, whose subscription the kernel greets no more, so it is nudged
    # as jupyter_server does, not left waiting WELCOME_TIMEOUT for a greeting
    async with websockets.connect(channels, additional_headers=auth) as ws:
        assert await execute(ws, "print(1)") == "1\n"
    una.client.delete(f"{una.prefix}/api/kernels/{kernel_id}")
    server_log = user_log_path(hub.site / "logs", "una").read_text()
    assert "Restoring connection" in server_log and "no IOPub greeting" not in server_log
    output = [m["content"]["text"] for m in seen if m["msg_type"] == "stream"]
    assert output == ["42\n"], f"the first cell's output got lost: {seen}"
    # ... and its websocket waited for the kernel's IOPub greeting, not for kernel_info round trips
    # on shell and control (fastpath/kernel_websocket.py): the statuses of one kernel_info request
    # may come through (jupyter_server's own, before the handshake, can be published after the
    # websocket subscribed), not of the two a nudge sends
    asked = {
        m["parent_header"]["msg_id"]
        for m in seen
        if m["parent_header"].get("msg_type") == "kernel_info_request"
    }
    assert len(asked) <= 1, seen

    probe = """
import os, json
info = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "user": os.environ["JUPYTERHUB_USER"],
        "token": os.environ["JUPYTERHUB_API_TOKEN"], "home": os.environ["HOME"], "ppid": os.getppid(), "nice": os.nice(0),
        "pid": os.getpid()}
print(json.dumps(info))
"""
    info = {
        name: json.loads((await s.run_code(probe)).strip().splitlines()[-1])
        for name, s in servers.items()
    }
    for name in ("una", "vic"):
        account = pwd.getpwnam(hub.prefix + name)
        assert info[name]["uid"] == account.pw_uid and info[name]["gid"] == account.pw_gid
        assert 0 not in info[name]["groups"], "root's groups leaked into a student's server"
        assert info[name]["user"] == name and info[name]["home"] == str(hub.site / "users" / name)
        assert info[name]["nice"] == 5, "servers (and their kernels) run below the hub's priority"
    assert info["una"]["token"] != info["vic"]["token"]

    # the hub (and its proxy) run ahead of everything else: hub.nice, -5 by default
    hub_process = psutil.Process(hub.proc.pid)
    assert hub_process.nice() == -5
    proxy = [
        p for p in hub_process.children() if "configurable-http-proxy" in " ".join(p.cmdline())
    ]
    assert proxy and proxy[0].nice() == -5

    # the servers (and their kernels) were forked by the fork server, not started cold ...
    forkserver = psutil.Process(info["una"]["ppid"])  # a forked kernel's parent
    assert (
        "mlworkshop.fastpath.server" in " ".join(forkserver.cmdline())
        and forkserver.uids().real == 0
    )
    vic_server = _server_process(forkserver, info["vic"]["uid"], info["vic"]["pid"])
    assert vic_server.name() == "mlw-server", "ps and top tell a forked server from its kernels"
    # ... and una cannot read vic's server environment (his token) or his files
    leak = await servers["una"].run_code(f"""
for path in ['/proc/{vic_server.pid}/environ', '{hub.site}/users/vic/work']:
    try:
        open(path).read() if path.endswith('environ') else __import__('os').listdir(path)
        print('READ', path)
    except PermissionError:
        print('DENIED', path)
""")
    assert leak.count("DENIED") == 2 and "READ" not in leak, leak

    # the fork server never held a student's token: servers forked later cannot find one in
    # the memory they inherit from it
    for name in ("una", "vic"):
        assert not memory_contains(forkserver.pid, info[name]["token"].encode()), (
            f"{name}'s token is in the fork server"
        )

    # forked servers survive the hub restarting (and its fork server being replaced)
    hub.stop()
    hub.start()
    assert servers["vic"].write_text("work/after-restart.txt", "still here").status_code == 201
    # ... and a surviving server's next kernel is forked by the new hub's fork server
    after = json.loads((await servers["vic"].run_code(probe)).strip().splitlines()[-1])
    new_forkserver = psutil.Process(after["ppid"])
    assert new_forkserver.pid != forkserver.pid and "mlworkshop.fastpath.server" in " ".join(
        new_forkserver.cmdline()
    )
    assert after["uid"] == info["vic"]["uid"] and after["nice"] == 5


def _server_process(forkserver: psutil.Process, uid: int, kernel_pid: int) -> psutil.Process:
    """The server the fork server forked for this account: its one child of that uid that is not
    the kernel the probe ran in."""
    servers = [p for p in forkserver.children() if p.uids().real == uid and p.pid != kernel_pid]
    assert len(servers) == 1, servers
    return servers[0]


async def test_queued_spawns_show_progress_and_succeed(make_hub):
    # cold starts (~2 s each) so that the line lasts long enough to be seen: forked servers start
    # so fast that three students are through it before a progress stream connects
    hub = make_hub(**{"spawner.max_concurrent_starts": 1, "spawner.local.preload": False})
    names = ["q1", "q2", "q3"]
    for name in names:
        mlw(hub.site, "user", "add", name, "--password-stdin", input=PASSWORD + "\n")
    hub.start()
    browsers = {}
    for name in names:
        browsers[name] = hub.browser()
        assert browsers[name].login(name, PASSWORD).status_code == 302

    def start(name: str) -> int:
        return browsers[name].api("POST", f"/users/{name}/server").status_code

    # all at once (the API answers when the start finishes): only one may be starting at a time
    posts = [asyncio.create_task(asyncio.to_thread(start, name)) for name in names]
    await asyncio.sleep(0.3)

    async def progress_messages(name: str) -> list[dict]:
        browser = browsers[name]
        events = []
        async with httpx.AsyncClient(
            base_url=hub.url, cookies=browser.client.cookies, timeout=120
        ) as client:
            async with client.stream("GET", f"/hub/api/users/{name}/server/progress") as stream:
                async for line in stream.aiter_lines():
                    if line.startswith("data:"):
                        events.append(json.loads(line[5:]))
                        if events[-1].get("ready") or events[-1].get("failed"):
                            break
        return events

    results = await asyncio.gather(*(progress_messages(name) for name in names))
    assert all(code in (201, 202) for code in await asyncio.gather(*posts))
    for name, events in zip(names, results, strict=True):
        assert events[-1].get("ready"), f"{name}: {events[-1]}"
        assert not any(e.get("failed") for e in events)
    waited = [
        e["message"] for events in results for e in events if "in line" in e.get("message", "")
    ]
    assert waited, "no student was told they were waiting in line"
    for name in names:
        assert browsers[name].client.get(f"/user/{name}/lab").status_code == 200


@pytest.mark.parametrize("preload", [True, False], ids=["forked", "cold"])
def test_jupyterlab_saves_settings_and_workspaces_in_the_students_home(make_hub, preload):
    """JupyterLab computes its per-user folders when jupyterlab.labapp is imported; the fork server
    imports it as root, so forked servers used /root/.jupyter and every save answered 500."""
    if os.geteuid() != 0:
        pytest.skip("per-student accounts need a root hub")
    hub = make_hub(**{"spawner.local.preload": str(preload).lower()})
    mlw(hub.site, "user", "add", "una", "--password-stdin", input=PASSWORD + "\n")
    hub.start()
    browser = hub.browser()
    assert browser.login("una", PASSWORD).status_code == 302
    browser.start_server("una")
    assert browser.client.get("/user/una/lab").status_code == 200
    headers = {"X-XSRFToken": browser.client.cookies.get("_xsrf", path="/user/una/") or ""}
    saved = browser.client.put(
        "/user/una/lab/api/workspaces/lab",
        headers=headers,
        json={"data": {"layout-restorer:data": {}}, "metadata": {"id": "lab"}},
    )
    assert saved.status_code == 204, saved.text
    theme = browser.client.put(
        "/user/una/lab/api/settings/@jupyterlab/apputils-extension:themes",
        headers=headers,
        json={"raw": '{"theme": "JupyterLab Dark"}'},
    )
    assert theme.status_code == 204, theme.text
    home = pwd.getpwnam(hub.prefix + "una").pw_dir
    lab_dir = os.path.join(home, ".jupyter", "lab")
    assert os.path.exists(os.path.join(lab_dir, "workspaces"))
    settings = os.path.join(
        lab_dir, "user-settings", "@jupyterlab", "apputils-extension", "themes.jupyterlab-settings"
    )
    assert os.stat(settings).st_uid == pwd.getpwnam(hub.prefix + "una").pw_uid


def test_jupyterlab_bundles_are_sent_compressed_once_and_whole(make_hub):
    """The fork server compressed JupyterLab's bundles once (fastpath/static.py); a server sends
    the .gz to a browser that accepts gzip, and the file itself to one that does not. The page
    asks JupyterLab for no build check."""
    import gzip
    import re

    from mlworkshop.fastpath.static import static_roots

    hub = make_hub()
    mlw(hub.site, "user", "add", "gia", "--password-stdin", input=PASSWORD + "\n")
    hub.start()
    browser = hub.browser()
    assert browser.login("gia", PASSWORD).status_code == 302
    browser.start_server("gia")
    server = Server(hub.url, "gia", browser.new_token("gia"))
    lab = server.client.get("/user/gia/lab")
    assert lab.status_code == 200, lab.text[:300]
    # and JupyterLab is told not to check for a rebuild: each check ran node as the student
    # (~0.35 CPU-s) at every page load, for an installation students cannot rebuild
    # (lab_config/labconfig/page_config.json, fastpath/singleuser.py)
    page_config = lab_page_config(lab.text)
    assert page_config["buildCheck"] is False and page_config["buildAvailable"] is False
    bundle = re.search(r'src="([^"]*/static/lab/[^"]+\.js)[^"]*"', lab.text).group(1)
    name = bundle.rsplit("/", 1)[1]
    original = (static_roots()[0] / name).read_bytes()

    packed = server.client.get(bundle, headers={"Accept-Encoding": "gzip"})
    assert packed.status_code == 200
    assert packed.headers.get("content-encoding") == "gzip"
    assert packed.headers["content-type"].startswith(("application/javascript", "text/javascript"))
    assert int(packed.headers["content-length"]) < len(original) / 2
    assert packed.content == original  # httpx unpacks it: the same bytes arrive

    plain = server.client.get(bundle, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert plain.content == original and int(plain.headers["content-length"]) == len(original)
    assert gzip.decompress((static_roots()[0] / (name + ".gz")).read_bytes()) == original
