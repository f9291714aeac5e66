"""The docker backend on a real hub driving podman's Docker-compatible socket: two students each
get a container from the locally built test image; what they see is checked from inside (the
server's API and `exec`) and from the engine (`inspect`); then stop, a hub restart, and the
failures an admin must be able to act on.
"""

from __future__ import annotations

import os
import secrets
import stat
import time

import docker.errors
import pytest

from tests.integration.hubctl import Server, lab_page_config, mlw

from .images import podman

pytestmark = [pytest.mark.containers, pytest.mark.integration]

PASSWORD = "Container-class-7"
TWO_NPUS = "[{kind: ascend, index: 6, name: Fake 910B}, {kind: ascend, index: 7, name: Fake 910B}]"


def docker_settings(
    engine: str, image: str, images: str | None = None, accelerators: str | None = None
) -> dict:
    """Hub settings as few `config set` calls as possible (each one is a CLI run)."""
    tag = secrets.token_hex(3)
    images = images or f"[{{name: default, image: '{image}', description: test image}}]"
    settings = {
        "spawner.backend": "docker",
        "spawner.docker": (
            f"{{url: '{engine}', images: {images}, pull_policy: never, "
            f"name_template: 'mlwtest-{tag}-{{username}}', mem_limit: 512M, "
            "environment: {COURSE: ml101}}"
        ),
        "culler.enabled": "false",
    }
    if accelerators:
        settings["accelerators"] = accelerators
    return settings


def exec_in(client, container: str, *cmd: str) -> tuple[int, str]:
    run = client.exec_create(container, list(cmd))
    output = client.exec_start(run["Id"]).decode(errors="replace")
    return client.exec_inspect(run["Id"])["ExitCode"], output


def container_of(client, hub, username: str) -> dict:
    found = client.containers(
        all=True,
        filters={"label": [f"org.mlworkshop.site={hub.site}", f"org.mlworkshop.user={username}"]},
    )
    assert len(found) == 1, found
    return client.inspect_container(found[0]["Id"])


def spawn(browser, name: str, body: dict | None = None):
    return browser.api("POST", f"/users/{name}/server", json=body or {})


async def test_two_students_in_containers(
    make_hub, engine, test_image, client, cleanup_containers, fake_ascend
):
    fake_ascend([6, 7])
    hub = make_hub(
        **docker_settings(
            engine,
            test_image,
            accelerators=(
                f"{{mode: exclusive, detect: false, inventory: {TWO_NPUS}, max_per_user: 1}}"
            ),
        )
    )
    cleanup_containers(str(hub.site))
    (hub.site / "content" / "lessons").mkdir(parents=True, exist_ok=True)
    (hub.site / "content" / "lessons" / "intro.md").write_text("# hello\n")
    for name in ("alice", "bob"):
        mlw(hub.site, "user", "add", name, "--password-stdin", input=PASSWORD + "\n")
    mlw(hub.site, "user", "add", "teacher", "--admin", "--password-stdin", input=PASSWORD + "\n")
    hub.start()
    browsers = {}
    for name in ("alice", "bob"):
        browsers[name] = hub.browser()
        assert browsers[name].login(name, PASSWORD).status_code == 302

    started = time.monotonic()
    for name in ("alice", "bob"):
        response = spawn(browsers[name], name, {"profile": "npu-1"})
        assert response.status_code in (201, 202), response.text
    for name in ("alice", "bob"):
        browsers[name].wait_ready(name, timeout=120)
    print(f"two containers ready in {time.monotonic() - started:.1f} s")

    servers = {n: Server(hub.url, n, browsers[n].new_token(n)) for n in ("alice", "bob")}
    specs = {n: container_of(client, hub, n) for n in ("alice", "bob")}
    # JupyterLab runs no build check in a container either (node as the student at every page
    # load, for an installation the student cannot rebuild: fastpath/singleuser.py LAB_CONFIG)
    lab = servers["alice"].client.get("/user/alice/lab")
    assert lab.status_code == 200, lab.text[:300]
    assert lab_page_config(lab.text)["buildCheck"] is False

    # --- through the server's API: the workspace as the student sees it ---
    a, b = servers["alice"], servers["bob"]
    listing = {item["name"] for item in a.contents("GET", "").json()["content"]}
    assert {"work", "lessons", "datasets", "models", "submissions"} <= listing
    assert a.read_text("lessons/intro.md").json()["content"] == "# hello\n"
    assert a.write_text("work/notes.py", "print('alice')").status_code == 201
    assert b.write_text("work/secret.txt", "bob's secret").status_code == 201
    assert a.write_text("submissions/hw1.txt", "alice's answer").status_code == 201
    assert a.write_text("lessons/graffiti.txt", "x").status_code in (403, 500)
    assert not (hub.site / "content" / "lessons" / "graffiti.txt").exists()
    # files land in the site, owned by the student's own account
    host_notes = hub.site / "users" / "alice" / "work" / "notes.py"
    assert host_notes.read_text() == "print('alice')"

    # --- from inside each container (exec) ---
    for name, spec in specs.items():
        cid = spec["Id"]
        code, uid = exec_in(client, cid, "id", "-u")
        assert code == 0 and uid.strip() != "0", f"{name}'s container runs as root"
        if os.geteuid() == 0:  # the hub made <prefix><name>: the container runs as that account
            import pwd

            assert int(uid) == pwd.getpwnam(hub.prefix + name).pw_uid
            assert host_notes.stat().st_uid == pwd.getpwnam(hub.prefix + "alice").pw_uid
            assert stat.S_IMODE((hub.site / "users" / name / "work").stat().st_mode) == 0o700
        code, env = exec_in(client, cid, "env")
        assert "COURSE=ml101" in env and f"JUPYTERHUB_USER={name}" in env
        code, out = exec_in(
            client, cid, "sh", "-c", "touch /home/jovyan/lessons/x 2>&1; echo rc=$?"
        )
        assert "rc=0" not in out and "Read-only file system" in out, out
        code, out = exec_in(client, cid, "sh", "-c", "touch /home/jovyan/work/ok && echo writable")
        assert "writable" in out, out
        # the memory limit as the kernel enforces it (cgroup v2, else v1)
        code, limit = exec_in(
            client,
            cid,
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
        )
        assert int(limit.split()[0]) == 512 * 1024 * 1024, limit
        assert spec["HostConfig"]["Memory"] == 512 * 1024 * 1024

    # work/ is private: bob's file is not in alice's container at all
    code, out = exec_in(client, specs["alice"]["Id"], "ls", "-a", "/home/jovyan/work")
    assert "notes.py" in out and "secret.txt" not in out
    code, out = exec_in(
        client, specs["alice"]["Id"], "sh", "-c", "find / -name secret.txt 2>/dev/null | head -1"
    )
    assert out.strip() == ""

    # --- the devices the allocator chose are in each container's spec, one chip each ---
    chips = {}
    for name, spec in specs.items():
        devices = [d["PathOnHost"] for d in spec["HostConfig"]["Devices"] or []]
        mine = [d for d in devices if d.startswith("/dev/davinci") and d[12:].isdigit()]
        assert len(mine) == 1 and "/dev/davinci_manager" in devices, devices
        chips[name] = mine[0]
        assert any(
            bind.startswith("/usr/local/Ascend/driver:")
            and bind.endswith(":ro")
            or "/usr/local/Ascend/driver" in bind
            and "ro" in bind.split(":")[-1]
            for bind in spec["HostConfig"]["Binds"]
        ), spec["HostConfig"]["Binds"]
        env = dict(e.split("=", 1) for e in spec["Config"]["Env"])
        assert env["ASCEND_VISIBLE_DEVICES"] == mine[0][len("/dev/davinci") :]
        code, out = exec_in(client, spec["Id"], "ls", mine[0])
        assert code == 0, out
    assert sorted(chips.values()) == ["/dev/davinci6", "/dev/davinci7"], chips

    # --- an admin's container reads every submission, read-only ---
    admin = hub.browser()
    assert admin.login("teacher", PASSWORD).status_code == 302
    assert spawn(admin, "teacher").status_code in (201, 202)
    admin.wait_ready("teacher", timeout=120)
    t = Server(hub.url, "teacher", admin.new_token("teacher"))
    handed_in = t.read_text("submissions/alice/hw1.txt")
    assert handed_in.status_code == 200 and handed_in.json()["content"] == "alice's answer"
    assert t.write_text("submissions/alice/hw1.txt", "graded").status_code in (403, 500)
    admin.stop_server("teacher")

    # --- stop removes the container; files stay ---
    browsers["alice"].stop_server("alice")
    with pytest.raises(docker.errors.NotFound):
        client.inspect_container(specs["alice"]["Id"])
    assert host_notes.exists()

    # --- a hub restart leaves bob's container running and reachable ---
    assert hub.stop() < 15
    assert client.inspect_container(specs["bob"]["Id"])["State"]["Running"]
    hub.start()
    assert b.read_text("work/secret.txt").json()["content"] == "bob's secret"
    assert container_of(client, hub, "bob")["Id"] == specs["bob"]["Id"]

    # and alice starts again, in a fresh container, with her files
    response = spawn(browsers["alice"], "alice")
    assert response.status_code in (201, 202), response.text
    browsers["alice"].wait_ready("alice", timeout=120)
    a2 = Server(hub.url, "alice", browsers["alice"].new_token("alice"))
    assert a2.read_text("work/notes.py").json()["content"] == "print('alice')"


@pytest.fixture
def broken_image(test_image, tmp_path):
    """The test image with a server command that fails at once (no RUN step: built instantly)."""
    tag = f"localhost/mlworkshop-test-broken:{secrets.token_hex(3)}"
    (tmp_path / "Containerfile").write_text(
        f'FROM {test_image}\nCMD ["sh", "-c", "echo this image is broken >&2; exit 3"]\n'
    )
    podman("build", "-t", tag, str(tmp_path))
    yield tag
    podman("rmi", "-f", tag, check=False)


async def test_failures_are_explained_and_leave_nothing(
    make_hub, engine, test_image, broken_image, client, cleanup_containers
):
    hub = make_hub(
        **docker_settings(
            engine,
            test_image,
            images=f"[{{name: default, image: '{test_image}'}}, {{name: ghost, image: 'localhost/mlworkshop-not-built:1'}}, "
            f"{{name: broken, image: '{broken_image}'}}]",
            accelerators="{mode: exclusive, detect: false, inventory: [{kind: ascend, index: 250, name: Missing chip}]}",
        )
    )
    cleanup_containers(str(hub.site))
    for name in ("carol", "dave", "erin", "fred"):
        mlw(hub.site, "user", "add", name, "--password-stdin", input=PASSWORD + "\n")
    hub.start()
    name_template = mlw(hub.site, "config", "get", "spawner.docker.name_template").stdout.strip()
    template = name_template.replace("{username}", "carol")

    def failed_spawn(name: str, expect: str, body: dict | None = None) -> str:
        """The answer and the hub's log once the log holds `expect` (the start error's own line
        reaches hub.log through the tee, possibly after the answer)."""
        began = time.monotonic()
        browser = hub.browser()
        assert browser.login(name, PASSWORD).status_code == 302
        response = spawn(browser, name, body)
        deadline = time.monotonic() + 60
        while response.status_code in (201, 202) and time.monotonic() < deadline:
            model = browser.api("GET", f"/users/{name}").json()
            if not model.get("pending") and not (model.get("servers") or {}).get(""):
                break
            time.sleep(0.3)
        print(
            f"{name}: failed spawn took {time.monotonic() - began:.1f} s ({response.status_code})"
        )
        return response.text + "\n" + hub.wait_log(expect)

    # image missing: the message names the commands that build or load it
    text = failed_spawn("dave", "is not on the container host", {"image": "ghost"})
    assert "localhost/mlworkshop-not-built:1 is not on the container host" in text
    assert "mlworkshop images build" in text and "mlworkshop images load" in text

    # a container with the user's name that is not ours: refused, and left alone
    foreign = client.create_container(test_image, command=["sleep", "300"], name=template)
    try:
        text = failed_spawn("carol", "already exists and is not this hub's")
        assert f"A container named {template} already exists and is not this hub's" in text
        assert client.inspect_container(foreign["Id"])["Id"] == foreign["Id"]
    finally:
        client.remove_container(foreign["Id"], force=True)

    # a start that fails after the container was created (a device file that does not exist):
    # no container is left behind
    text = failed_spawn("erin", "davinci250", {"profile": "npu-1"})
    assert "davinci250" in text
    assert client.containers(all=True, filters={"label": f"org.mlworkshop.site={hub.site}"}) == []

    # a server that exits while starting: its own last words reach the admin, nothing is left
    text = failed_spawn("fred", "this image is broken", {"image": "broken"})
    assert "exited while starting" in text and "this image is broken" in text
    assert client.containers(all=True, filters={"label": f"org.mlworkshop.site={hub.site}"}) == []
