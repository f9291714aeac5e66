"""The doctor on a site whose hub and usage databases are on PostgreSQL: a private server of this
test's own (initdb into a temporary folder, as scripts/test-postgres.sh does -- never the shared
test server), stopped for real, then started again."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from mlworkshop.config import set_key
from mlworkshop.site import Site, init_site

from .doctor_helpers import doctor, finding


def _bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    return found[-1] if found and os.path.exists(f"{found[-1]}/initdb") else None


class PrivatePostgres:
    def __init__(self):
        self.bindir = _bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="mlw-doctor-pg-"))
        os.chmod(self.dir, 0o755)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.as_ = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", f"{self.dir}/data", "-U", "postgres", "-A", "trust", "--no-sync")
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run(
            [*self.as_, f"{self.bindir}/{tool}", *args], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{tool}: {result.stdout}{result.stderr}"

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            f"{self.dir}/data",
            "-l",
            f"{self.dir}/log",
            "-w",
            "-o",
            options,
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", f"{self.dir}/data", "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        subprocess.run(
            [
                *self.as_,
                f"{self.bindir}/pg_ctl",
                "-D",
                f"{self.dir}/data",
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            capture_output=True,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_postgres():
    if _bindir() is None:
        pytest.skip("PostgreSQL is not installed (scripts/system-deps.sh installs it)")
    server = PrivatePostgres()
    yield server
    server.remove()


def test_a_stopped_database_server_is_an_error_until_it_is_started(private_postgres, tmp_path):
    root = tmp_path / "site"
    init_site(Site(root))
    set_key(root, "hub.db_url", private_postgres.url)
    set_key(root, "usage.db_url", private_postgres.url)
    report = doctor(root)[1]
    assert finding(report, "hub-database")["severity"] == "ok"
    assert finding(report, "usage-database")["severity"] == "ok"

    private_postgres.stop()
    code, report = doctor(root)
    hub_db = finding(report, "hub-database")
    assert code == 1 and hub_db["severity"] == "error", hub_db
    assert "does not answer" in hub_db["message"] and "systemctl start postgresql" in hub_db["fix"]
    assert finding(report, "usage-database")["severity"] == "error"
    assert "postgres@127.0.0.1" in hub_db["message"]  # the URL, shown without a password

    private_postgres.start()
    assert finding(doctor(root)[1], "hub-database")["severity"] == "ok"
