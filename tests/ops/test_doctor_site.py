"""The doctor's checks of a site on disk, with real parts: a small tmpfs site filled to 99 %,
a damaged SQLite database, certificates that expire, backups that age, a broken config."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from mlworkshop.config import set_key
from mlworkshop.site import Site, init_site

from .doctor_helpers import MLW, doctor, finding


@pytest.fixture
def site(tmp_path) -> Path:
    root = tmp_path / "site"
    init_site(Site(root))
    return root


@pytest.fixture
def tmpfs_site():
    """A site on its own 8 MiB tmpfs (root only: mount)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = Path(tempfile.mkdtemp(prefix="mlw-tmpfs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=True)
    try:
        root = mount / "site"
        init_site(Site(root))
        shutil.rmtree(root / "content" / "lessons")  # the bundled lessons: not what is measured
        (root / "content" / "lessons").mkdir()
        yield root
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


def _fill(root: Path, leave: float) -> Path:
    """A file that leaves `leave` of the disk free."""
    usage = shutil.disk_usage(root)
    size = usage.free - int(usage.total * leave)
    ballast = root / "users" / "ballast.bin"
    with open(ballast, "wb") as handle:
        handle.write(b"\0" * size)
    return ballast


def test_a_site_disk_filled_to_99_percent_is_an_error_then_ok_once_freed(tmpfs_site):
    code, report = doctor(tmpfs_site)
    assert finding(report, "disk")["severity"] == "ok"
    ballast = _fill(tmpfs_site, 0.01)
    code, report = doctor(tmpfs_site)
    disk = finding(report, "disk")
    assert code == 1 and disk["severity"] == "error", disk
    assert "notebooks cannot be saved" in disk["message"] and "du -xsh" in disk["fix"]
    assert not disk["fixable"]  # deleting files is a person's decision
    ballast.unlink()
    _fill(tmpfs_site, 0.05)
    assert finding(doctor(tmpfs_site)[1], "disk")["severity"] == "warn"


def test_a_damaged_hub_database_is_an_error(site):
    import sqlite3

    db = site / "state" / "jupyterhub.sqlite"

    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 200)
        conn.execute("CREATE INDEX t_x ON t (x)")
    conn.close()
    assert finding(doctor(site)[1], "hub-database")["severity"] == "ok"
    data = bytearray(db.read_bytes())
    page = 4096
    for offset in range(2 * page + 100, 2 * page + 600):  # a b-tree page of the table or index
        data[offset] ^= 0xFF
    db.write_bytes(bytes(data))
    code, report = doctor(site)
    found = finding(report, "hub-database")
    assert code == 1 and found["severity"] == "error", found
    assert "damaged" in found["message"] and "mlworkshop restore" in found["fix"]


def _certificate(path: Path, not_after: dt.datetime) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hub.example.org")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - dt.timedelta(days=90))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_certificate_expiry_warns_then_errors(site, tmp_path):
    cert = tmp_path / "fullchain.pem"
    now = dt.datetime.now(dt.UTC)
    _certificate(cert, now + dt.timedelta(days=60))
    set_key(site, "hub.https.cert", str(cert))
    assert finding(doctor(site)[1], "certificate")["severity"] == "ok"
    _certificate(cert, now + dt.timedelta(days=5))
    soon = finding(doctor(site)[1], "certificate")
    assert soon["severity"] == "warn" and "certbot renew" in soon["fix"], soon
    _certificate(cert, now - dt.timedelta(days=1))
    code, report = doctor(site)
    gone = finding(report, "certificate")
    assert code == 1 and gone["severity"] == "error" and "expired on" in gone["message"]


def test_backup_age(site):
    assert finding(doctor(site)[1], "backup")["severity"] == "warn"  # none yet
    backups = site / "backups"
    backups.mkdir()
    archive = backups / "mlworkshop-host-20261201-000000.tar.gz"
    archive.write_bytes(b"")
    assert finding(doctor(site)[1], "backup")["severity"] == "ok"
    set_key(site, "backup.schedule", "daily")
    old = time.time() - 3 * 86400
    os.utime(archive, (old, old))
    stale = finding(doctor(site)[1], "backup")
    assert stale["severity"] == "warn" and "72 h old" in stale["message"], stale


def test_a_broken_config_is_one_clear_error(site):
    (site / "mlworkshop.yaml").write_text("hub:\n  port: eighty\n")
    code, report = doctor(site)
    assert code == 1
    assert [f["id"] for f in report["findings"]] == ["config"]
    assert "hub.port" in report["findings"][0]["message"]


def test_text_output_names_each_fix(site):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MLWORKSHOP_")}
    os.chmod(site / "content" / "lessons", 0o777)
    result = subprocess.run(
        [*MLW, "doctor", "--site", str(site)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "ERROR content-permissions" in result.stdout
    assert "fix: mlworkshop doctor --fix" in result.stdout
