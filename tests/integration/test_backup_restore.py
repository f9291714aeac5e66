"""Issue 13, item 3 end to end: a backup taken from a real root hub while three students' servers
run and one student's kernel appends to a file in a loop; the students' system accounts then
deleted (a "new machine": their uids are not coming back), the backup restored into a fresh site
elsewhere on the machine and a hub started there. Every account logs in with its password, every
file's sha256 is what it was, the usage report up to the backup is identical, the lockout is
kept, and a student's server runs as her re-made account and reads her files. On SQLite and on
PostgreSQL (fresh databases on the tests' server for the restore). A flipped byte and a cut
archive are refused by the real command, with nothing written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pwd
import stat
import time
import uuid
from pathlib import Path

import pytest

from .hubctl import (
    Hub,
    Server,
    execute_request,
    free_port,
    make_site_dir,
    mlw,
    remove_accounts,
    remove_site,
    wait_until,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.geteuid() != 0, reason="backup reads every student's home: needs a root hub"
    ),
]

PASSWORDS = {
    "teacher": "Teach-the-class-1",
    "alice": "alice-Secret-42",
    "bob": "bob-Secret-42x",
    "carol": "carol-Secret-42",
    "dave": "dave-Secret-4242",
}
STUDENTS = ("alice", "bob", "carol")
HIDDEN_RUNTIME = (
    "/.local/",
    "/.cache/",
    "/.ipython/",
    "/.jupyter/",
    "/.ipynb_checkpoints/",
    "/.config/",
)


@pytest.fixture
def databases(request):
    """name -> fresh PostgreSQL database URL, made on demand on the tests' server, dropped after
    (requested before make_hub, so the hubs stop first)."""
    made: list[str] = []
    admin = None

    def make() -> str:
        nonlocal admin
        import psycopg2

        from tests.conftest import PG_DSN, PG_HOST, PG_PORT, postgres_available

        if admin is None:
            if not postgres_available():
                pytest.fail(
                    "the tests' PostgreSQL is not answering (source scripts/test-postgres.sh && pg_start)"
                )
            admin = psycopg2.connect(PG_DSN)
            admin.autocommit = True
        name = "mlw_test_" + uuid.uuid4().hex[:10]
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"

    yield make
    if admin is not None:
        with admin.cursor() as cur:
            for name in made:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def tree_hashes(root: Path) -> dict[str, tuple]:
    """sha256 (or link target) of everything under users/, submissions/ and content/."""
    found = {}
    for top in ("users", "submissions", "content"):
        for dirpath, dirnames, filenames in os.walk(root / top):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                rel = str(path.relative_to(root))
                st = path.lstat()
                if stat.S_ISLNK(st.st_mode):
                    found[rel] = ("link", os.readlink(path))
                elif stat.S_ISREG(st.st_mode):
                    found[rel] = (
                        "file",
                        hashlib.sha256(path.read_bytes()).hexdigest(),
                        st.st_mtime,
                    )
    return found


async def append_forever(server: Server, path: str) -> str:
    """A kernel that appends a line to `path` every few milliseconds until it is killed; returns
    its id (the websocket is closed, the kernel keeps running)."""
    import websockets

    kernel = server.client.post(f"{server.prefix}/api/kernels", json={"name": "python3"})
    assert kernel.status_code == 201, kernel.text
    kernel_id = kernel.json()["id"]
    ws_url = server.base.replace("http", "ws") + f"{server.prefix}/api/kernels/{kernel_id}/channels"
    code = (
        f"import itertools, time\nwith open({path!r}, 'a', buffering=1) as f:\n"
        "    for i in itertools.count():\n        f.write(f'line {i:08d}\\n')\n        time.sleep(0.002)\n"
    )
    async with websockets.connect(
        ws_url, additional_headers={"Authorization": f"token {server.token}"}
    ) as ws:
        await ws.send(execute_request(code)[1])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the kernel says it is busy with it
            msg = json.loads(await ws.recv())
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "busy":
                break
    return kernel_id


def usage_csv(site: Path, start: str, end: str) -> str:
    return mlw(site, "usage", "report", "--from", start, "--to", end, "--csv").stdout


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request):
    return request.param


async def test_backup_while_running_then_restore_elsewhere(engine, databases, make_hub, tmp_path):
    settings = {
        "usage.sample_every": 0.5,
        "usage.service_port": free_port(),
        "culler.enabled": "false",
    }
    if engine == "postgresql":
        settings |= {"hub.db_url": databases(), "usage.db_url": databases()}
    hub = make_hub(**settings)
    for name, password in PASSWORDS.items():
        mlw(
            hub.site,
            "user",
            "add",
            name,
            *(["--admin"] if name == "teacher" else []),
            "--password-stdin",
            input=password + "\n",
        )
    hub.start()

    # three students at work; alice's kernel keeps appending to a file
    servers = {}
    for name in STUDENTS:
        browser = hub.browser()
        assert browser.login(name, PASSWORDS[name]).status_code == 302
        browser.start_server(name)
        server = Server(hub.url, name, browser.new_token(name))
        assert server.write_text("work/notes.md", f"{name}'s notes\n" * 200).status_code == 201
        assert server.write_text("submissions/hw1.py", f"print('{name}')\n").status_code == 201
        servers[name] = server
    kernel = await append_forever(servers["alice"], "work/append.log")
    log = hub.site / "users" / "alice" / "work" / "append.log"
    wait_until(lambda: log.exists() and log.stat().st_size > 1000, 60, "the kernel to append")
    # a student planted links to things she may not read: they must stay links
    assert "ok" in await servers["bob"].run_code(
        "import os\nos.symlink('/etc/shadow', 'work/shadow')\nos.symlink('../../alice/work', 'work/alices')\nprint('ok')"
    )
    # dave is locked out (from the proxy's address, where every login comes from)
    mallory = hub.browser()
    for _ in range(5):
        mallory.login("dave", "wrong-password")
    assert "Too many failed logins" in mallory.login("dave", PASSWORDS["dave"]).text

    def report_until_now():  # a window that ends before the backup and holds all three sessions
        until = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)).replace(tzinfo=None)
        text = until.isoformat(timespec="seconds")
        report = usage_csv(hub.site, "2000-01-01", text)
        return text if all(f"\n{name}," in report for name in STUDENTS) else None

    until_text = wait_until(report_until_now, 60, "usage sessions of all three students")

    # the backup, while all of it runs
    started = time.time()
    archive = tmp_path / "backup.tar.gz"
    done = mlw(hub.site, "backup", str(archive))
    assert "Wrote" in done.stdout, done.stdout
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    original_report = usage_csv(hub.site, "2000-01-01", until_text)
    assert all(name in original_report for name in STUDENTS), original_report
    verified = mlw(hub.site, "backup", "--verify", str(archive))
    assert "every checksum matches" in verified.stdout
    servers["alice"].client.delete(f"{servers['alice'].prefix}/api/kernels/{kernel}")
    original = tree_hashes(hub.site)
    old_uids = {name: pwd.getpwnam(hub.prefix + name).pw_uid for name in STUDENTS}

    # a damaged archive: refused, nothing written
    for how in ("flip", "cut"):
        data = bytearray(archive.read_bytes())
        if how == "flip":
            data[len(data) // 2] ^= 0x40
        else:
            del data[len(data) * 2 // 3 :]
        bad = tmp_path / f"{how}.tar.gz"
        bad.write_bytes(bytes(data))
        target = tmp_path / f"restored-{how}"
        refused = mlw(target, "restore", str(bad), check=False)  # mlw() adds --site
        assert refused.returncode == 2 and "not a good backup" in refused.stderr, refused
        assert "Traceback" not in refused.stderr and not target.exists()

    # "a new machine": the old hub stopped, the students' accounts gone
    hub.stop()
    for _server in servers.values():
        _server.client.close()
    remove_accounts([hub.prefix + name for name in STUDENTS])

    new_root = make_site_dir()
    restored = Hub(new_root / "site")
    try:
        extra = []
        if engine == "postgresql":
            extra = ["--db-url", databases(), "--usage-db-url", databases()]
        result = mlw(restored.site, "restore", str(archive), *extra)
        assert "every checksum verified" in result.stdout, result.stdout
        restored.configure(**{"usage.service_port": free_port()})
        restored.start()

        # every account logs in with its password; dave's lockout came along
        for name, password in PASSWORDS.items():
            browser = restored.browser()
            answer = browser.login(name, password)
            if name == "dave":
                assert answer.status_code == 403 and "Too many failed logins" in answer.text
            else:
                assert answer.status_code == 302, (name, answer.status_code, answer.text[:300])
                assert browser.logged_in_as() == name

        # every file as it was when the backup read it
        restored_files = tree_hashes(restored.site)
        for rel, entry in restored_files.items():
            rel_original = original.get(rel)
            if rel.endswith("work/append.log"):
                now = log.read_bytes()
                mine = (restored.site / rel).read_bytes()
                assert mine and now.startswith(mine) and len(mine) < len(now)
                continue
            if entry[0] == "link":
                assert rel_original == entry, rel
                continue
            if rel_original is None or rel_original[1] != entry[1]:
                # only what changed while the backup ran or after it: a server's own runtime files
                assert any(part in "/" + rel for part in HIDDEN_RUNTIME) or (
                    rel_original is not None and rel_original[2] >= started - 1
                ), rel
        for name in STUDENTS:
            for rel in (f"users/{name}/work/notes.md", f"submissions/{name}/hw1.py"):
                assert restored_files[rel][:2] == original[rel][:2], rel
        assert os.readlink(restored.site / "users/bob/work/shadow") == "/etc/shadow"
        missing = [
            rel
            for rel in original
            if rel not in restored_files
            and not any(part in "/" + rel for part in HIDDEN_RUNTIME)
            and original[rel][2] < started - 1
        ]
        assert not missing, missing

        # the usage report up to the backup is the same
        assert usage_csv(restored.site, "2000-01-01", until_text) == original_report

        # accounts were made again by name, with new uids, and own their files
        for name in STUDENTS:
            account = pwd.getpwnam(hub.prefix + name)  # the restored site has the same prefix
            assert account.pw_uid != old_uids[name]
            assert (
                restored.site / "users" / name / "work" / "notes.md"
            ).stat().st_uid == account.pw_uid
        alice = restored.browser()
        alice.login("alice", PASSWORDS["alice"])
        alice.start_server("alice")
        server = Server(restored.url, "alice", alice.new_token("alice"))
        assert server.read_text("work/notes.md").json()["content"] == "alice's notes\n" * 200
        out = await server.run_code("import os; print(os.getuid())")
        assert int(out) == pwd.getpwnam(hub.prefix + "alice").pw_uid
    finally:
        try:
            restored.stop()
        finally:
            print(f"--- restored hub log ---\n{restored.log()[-6000:]}")
            remove_site(new_root)
