"""The helpers' system accounts (hub/service_accounts.py), the config that runs the proxy and the
culler as them (hub/configure.py), and the usage service's folder (hub/usage_storage.py): real
accounts, real setpriv, real files and ownership (needs root; skipped otherwise)."""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import socket
import sqlite3
import stat
import subprocess
import sys

import pytest
from traitlets.config import Config

from mlworkshop.config import MLWorkshopConfig
from mlworkshop.hub.configure import configure
from mlworkshop.hub.service_accounts import (
    CULLER_ACCOUNT,
    PROXY_ACCOUNT,
    ServiceAccountError,
    ensure_service_account,
    setpriv_command,
)
from mlworkshop.hub.usage_storage import UsageStorageError, prepare_usage_storage
from mlworkshop.site import Site

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="accounts and owners need root")
NOBODY = (65534, 65534)


@pytest.fixture
def account_name():
    name = f"_mlwt-{secrets.token_hex(3)}"
    group = f"mlwt-g{secrets.token_hex(3)}"
    subprocess.run(["groupadd", group], check=True)
    yield name, group
    subprocess.run(["userdel", name], capture_output=True)
    subprocess.run(["groupdel", name], capture_output=True)
    subprocess.run(["groupdel", group], capture_output=True)


def test_a_service_account_is_a_system_account_without_login_home_or_groups(account_name):
    name, group = account_name
    account = ensure_service_account(name, [group, "no-such-group-here"])
    entry = pwd.getpwnam(name)
    assert (account.uid, account.gid) == (entry.pw_uid, entry.pw_gid) and account.uid != 0
    assert entry.pw_shell.endswith(("nologin", "false")) and not os.path.exists(entry.pw_dir)
    assert grp.getgrgid(entry.pw_gid).gr_name == name  # a group of its own
    assert name in grp.getgrnam(group).gr_mem  # and the (device) groups it was given that exist
    assert ensure_service_account(name, [group]) == account  # made once, then kept


def test_a_service_account_with_root_ids_is_refused(account_name):
    name, _ = account_name
    subprocess.run(["useradd", "--system", "--no-create-home", "--gid", "0", name], check=True)
    with pytest.raises(ServiceAccountError, match="unprivileged account of its own"):
        ensure_service_account(name)


def _free_privileged_port() -> int:
    for port in range(900, 1000):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port below 1024")


def test_setpriv_runs_as_the_account_keeping_only_low_port_binding(account_name):
    name, group = account_name
    account = ensure_service_account(name, [group])
    port = _free_privileged_port()
    probe = (
        "import os, socket\n"
        f"s = socket.socket(); s.bind(('127.0.0.1', {port})); s.close()\n"
        "caps = {l.split(':')[0]: l.split()[1] for l in open('/proc/self/status') if l.startswith('Cap')}\n"
        "print(os.getresuid(), os.getresgid(), os.getgroups(), caps['CapEff'], caps['CapBnd'])\n"
    )
    out = subprocess.run(
        setpriv_command(name, [sys.executable, "-c", probe]),
        capture_output=True,
        text=True,
        cwd="/",
        check=True,
    ).stdout.split(" ", 6)
    ids = f"({account.uid}, {account.uid}, {account.uid})"
    assert (
        " ".join(out[:3]) == ids
        and " ".join(out[3:6]) == f"({account.gid}, {account.gid}, {account.gid})"
    )
    rest = out[6].split()
    assert (
        rest[0] == "[]"
    )  # no supplementary groups, not even the ones it was given (the proxy needs none)
    assert (
        int(rest[1], 16) == int(rest[2], 16) == 1 << 10
    )  # CAP_NET_BIND_SERVICE, and nothing else, ever


def _cfg(**sections) -> MLWorkshopConfig:
    return MLWorkshopConfig.model_validate(sections)


def _initialised(path) -> Site:
    """A site as `mlworkshop init` leaves it (configure only reads its secrets)."""
    from mlworkshop.site import init_site

    site = Site(path)
    init_site(site)
    return site


def test_a_root_hub_runs_proxy_and_culler_as_their_accounts(tmp_path):
    c = configure(Config(), _cfg(usage={"enabled": False}), _initialised(tmp_path))
    command = c.ConfigurableHTTPProxy.command
    assert command[:2] == ["/bin/sh", "-c"]  # root opens logs/proxy.log, then setpriv drops
    command = command[4:]
    assert os.path.basename(command[0]) == "setpriv" and f"--reuid={PROXY_ACCOUNT}" in command
    assert command[command.index("--") + 1].endswith("configurable-http-proxy")
    [culler] = [s for s in c.JupyterHub.services if s["name"] == "idle-culler"]
    assert culler["user"] == CULLER_ACCOUNT and culler["cwd"] == "/"
    assert c.MLWorkshopAuthenticator.proxy_account == PROXY_ACCOUNT
    assert c.MLWorkshopAuthenticator.public_url == "http://127.0.0.1:8000/"


def test_a_hub_that_is_not_root_keeps_everything_as_itself(tmp_path, monkeypatch):
    from mlworkshop.hub import service_accounts

    monkeypatch.setattr(service_accounts.os, "geteuid", lambda: 1000)
    c = configure(
        Config(),
        _cfg(usage={"enabled": False}, hub={"ip": "0.0.0.0", "port": 80}),
        _initialised(tmp_path),
    )
    command = c.ConfigurableHTTPProxy.command  # its output to logs/proxy.log, as the hub
    assert command[:2] == ["/bin/sh", "-c"] and command[3].endswith("proxy.log")
    assert command[4].endswith("configurable-http-proxy") and "--" not in command  # no setpriv
    [culler] = [s for s in c.JupyterHub.services if s["name"] == "idle-culler"]
    assert "user" not in culler
    assert c.MLWorkshopAuthenticator.proxy_account == ""  # every connection is taken as the proxy's
    assert c.MLWorkshopAuthenticator.public_url == "http://<this machine>:80/"


# --- the usage service's folder ------------------------------------------------------------
def _site(tmp_path) -> Site:
    site = Site(tmp_path / "site")
    (site.root / "state").mkdir(parents=True, mode=0o700)
    return site


def _legacy_db(site: Site, rows: int) -> None:
    db = sqlite3.connect(site.state / "usage.sqlite")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (x)")
    db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(rows)])
    db.commit()  # left in the write-ahead log: the checkpoint before the move must carry it over
    return db


def test_the_old_database_moves_into_the_usage_accounts_folder(tmp_path):
    site = _site(tmp_path)
    db = _legacy_db(site, 7)
    try:
        assert site.usage_sqlite == site.state / "usage.sqlite"  # until `up` has made the folder
        done = prepare_usage_storage(site, _cfg(), NOBODY)
    finally:
        db.close()
    folder = site.root / "usage"
    assert any("moved the usage database" in line for line in done)
    assert site.usage_sqlite == folder / "usage.sqlite"
    info = folder.lstat()
    assert (
        stat.S_ISDIR(info.st_mode)
        and (info.st_uid, info.st_gid) == NOBODY
        and stat.S_IMODE(info.st_mode) == 0o700
    )
    moved = (folder / "usage.sqlite").stat()
    assert (moved.st_uid, moved.st_gid) == NOBODY
    assert not (site.state / "usage.sqlite").exists()
    check = sqlite3.connect(folder / "usage.sqlite")
    assert check.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 7  # no record lost
    check.close()
    # the next start: nothing to move, nothing changes
    assert prepare_usage_storage(site, _cfg(), NOBODY) == []


def test_the_database_file_is_made_by_root_for_the_account(tmp_path):
    """Empty, and the account's: whoever opens it first (the hub's hooks as root, the CLI, the
    service), it stays the account's, and so do the side files SQLite makes next to it as root."""
    site = _site(tmp_path)
    prepare_usage_storage(site, _cfg(), NOBODY)
    path = site.root / "usage" / "usage.sqlite"
    info = path.lstat()
    assert stat.S_ISREG(info.st_mode) and info.st_size == 0 and (info.st_uid, info.st_gid) == NOBODY
    db = sqlite3.connect(path)  # as root
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (x)")
    db.commit()
    try:
        for name in ("usage.sqlite", "usage.sqlite-wal", "usage.sqlite-shm"):
            owned = (site.root / "usage" / name).stat()
            assert (owned.st_uid, owned.st_gid) == NOBODY, name
    finally:
        db.close()


def test_a_database_already_in_the_folder_is_never_overwritten(tmp_path):
    site = _site(tmp_path)
    prepare_usage_storage(site, _cfg(), NOBODY)
    sqlite3.connect(site.root / "usage" / "usage.sqlite").close()
    _legacy_db(site, 1).close()
    done = prepare_usage_storage(site, _cfg(), NOBODY)
    assert any("left" in line for line in done) and (site.state / "usage.sqlite").exists()


def test_a_link_where_the_folder_goes_is_refused(tmp_path):
    site = _site(tmp_path)
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o755)
    (site.root / "usage").symlink_to(target)
    with pytest.raises(UsageStorageError, match="must be a folder"):
        prepare_usage_storage(site, _cfg(), NOBODY)
    assert target.stat().st_uid == 0 and stat.S_IMODE(target.stat().st_mode) == 0o755


@pytest.mark.parametrize("plant", ["symlink", "hardlink"])
def test_links_planted_in_the_folder_are_not_handed_over(tmp_path, plant):
    """The usage account can write its folder: a link it left where the database goes must not
    make root give it the link's target."""
    site = _site(tmp_path)
    prepare_usage_storage(site, _cfg(), NOBODY)
    victim = tmp_path / "root-file"
    victim.write_text("root's")
    os.chmod(victim, 0o600)
    planted = site.root / "usage" / "usage.sqlite"
    planted.unlink()  # the account may remove its own database file and leave something else there
    if plant == "symlink":
        planted.symlink_to(victim)
    else:
        os.link(victim, planted)
    with pytest.raises(UsageStorageError, match="move it away"):
        prepare_usage_storage(site, _cfg(), NOBODY)
    info = victim.stat()
    assert (info.st_uid, info.st_gid) == (0, 0) and stat.S_IMODE(info.st_mode) == 0o600


def test_postgresql_needs_no_folder(tmp_path):
    site = _site(tmp_path)
    assert (
        prepare_usage_storage(site, _cfg(usage={"db_url": "postgresql://u@db/usage"}), NOBODY) == []
    )
    assert not (site.root / "usage").exists()
