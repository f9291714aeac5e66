"""hub/tls.py: the admin's certificate and key are checked before the proxy gets them (a key of
another certificate, an expired or future certificate, an encrypted, missing or non-key file are
refused with the key's name and the fix); the self-signed CA is made once and kept, its server
certificate verifies for the hub's names; the proxy's copy is readable by its group only."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mlworkshop.config import MLWorkshopConfig
from mlworkshop.hub import tls
from mlworkshop.site import Site

NOW = dt.datetime.now(dt.UTC)


def make_pair(
    folder: Path,
    name: str = "hub.example.org",
    start: dt.datetime | None = None,
    days: int = 90,
    password: bytes | None = None,
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = start or NOW - dt.timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = (
        folder / f"{name}-{start:%Y%m%d}.pem",
        folder / f"{name}-{start:%Y%m%d}.key",
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return cert_path, key_path


def refusal(cert: Path, key: Path) -> str:
    with pytest.raises(tls.TLSError) as info:
        tls.check_pair(cert, key)
    return str(info.value)


def test_a_good_pair_is_accepted(tmp_path):
    cert, key = make_pair(tmp_path)
    details, warnings = tls.check_pair(cert, key)
    assert details.names == ("hub.example.org",) and warnings == []


def test_a_key_of_another_certificate_is_refused(tmp_path):
    cert, _ = make_pair(tmp_path / "a")
    _, other_key = make_pair(tmp_path / "b", name="other.example.org")
    message = refusal(cert, other_key)
    assert (
        "hub.https.key" in message
        and str(other_key) in message
        and "is not the key of the certificate" in message
    )


def test_an_expired_certificate_is_refused(tmp_path):
    cert, key = make_pair(tmp_path, start=NOW - dt.timedelta(days=100), days=90)
    message = refusal(cert, key)
    assert "hub.https.cert" in message and "expired on" in message and "Renew it" in message


def test_a_certificate_not_valid_yet_is_refused(tmp_path):
    cert, key = make_pair(tmp_path, start=NOW + dt.timedelta(days=2))
    assert "not valid before" in refusal(cert, key)


def test_a_certificate_near_its_end_warns(tmp_path):
    cert, key = make_pair(tmp_path, start=NOW - dt.timedelta(days=85), days=90)
    _, warnings = tls.check_pair(cert, key)
    assert warnings and "renew it soon" in warnings[0]


@pytest.mark.parametrize("kind", ["missing", "folder", "not a key", "encrypted", "a certificate"])
def test_an_unreadable_key_is_refused(tmp_path, kind):
    cert, key = make_pair(tmp_path)
    if kind == "missing":
        key.unlink()
        expected = "no such file"
    elif kind == "folder":
        key.unlink()
        key.mkdir()
        expected = "is a folder"
    elif kind == "not a key":
        key.write_text("hello\n")
        expected = "is not a PEM private key"
    elif kind == "encrypted":
        cert, key = make_pair(tmp_path / "enc", password=b"secret phrase")
        expected = "encrypted with a passphrase"
    else:
        key.write_bytes(cert.read_bytes())
        expected = "is not a PEM private key"
    message = refusal(cert, key)
    assert message.startswith(f"hub.https.key = {str(key)!r}") and expected in message


def test_a_file_without_a_certificate_is_refused(tmp_path):
    cert, key = make_pair(tmp_path)
    message = refusal(key, key)  # the key given as the certificate
    assert message.startswith("hub.https.cert = ") and "holds no PEM certificate" in message


def test_a_key_unreadable_to_its_reader_is_refused(tmp_path):
    """Root reads every file; an account that may not read the key gets a sentence, not a traceback."""
    if os.geteuid() == 0:
        import subprocess
        import sys

        cert, key = make_pair(tmp_path)
        key.chmod(0o600)
        os.chmod(tmp_path, 0o755)
        code = (
            f"from pathlib import Path; from mlworkshop.hub import tls\n"
            f"try:\n  tls.check_pair(Path({str(cert)!r}), Path({str(key)!r}))\n"
            f"except tls.TLSError as e:\n  print(e)\n"
        )
        result = subprocess.run(
            [
                "setpriv",
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                sys.executable,
                "-c",
                code,
            ],
            capture_output=True,
            text=True,
            cwd="/",
        )
        assert "permission denied" in result.stdout, result.stderr
    else:
        cert, key = make_pair(tmp_path)
        key.chmod(0)
        assert "permission denied" in refusal(cert, key)


# --- self-signed ------------------------------------------------------------------------------
def test_self_signed_ca_is_made_once_and_its_server_certificate_verifies(tmp_path):
    from cryptography.x509.verification import PolicyBuilder, Store

    site = Site(tmp_path)
    names = ["localhost", "127.0.0.1", "hub.lab.example"]
    cert, key, done = tls.ensure_self_signed(site, names)
    folder = tls.tls_secrets(site)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(done) == 2
    ca = x509.load_pem_x509_certificate(tls.ca_path(site).read_bytes())
    server = x509.load_pem_x509_certificate(cert.read_bytes())
    verifier = (
        PolicyBuilder().store(Store([ca])).build_server_verifier(x509.DNSName("hub.lab.example"))
    )
    verifier.verify(server, [])  # raises if a browser-like check would fail
    ip_verifier = (
        PolicyBuilder()
        .store(Store([ca]))
        .build_server_verifier(x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1")))
    )
    ip_verifier.verify(server, [])
    tls.check_pair(cert, key)

    # Started again: nothing made; with a new name: the same CA signs a new server certificate.
    again = tls.ensure_self_signed(site, names)
    assert again[2] == [] and cert.read_bytes() == server.public_bytes(serialization.Encoding.PEM)
    _, _, done = tls.ensure_self_signed(site, names + ["10.1.2.3"])
    assert len(done) == 1 and "server certificate" in done[0]
    assert x509.load_pem_x509_certificate(tls.ca_path(site).read_bytes()) == ca
    # ... and near its end, a new one too
    later = NOW + dt.timedelta(days=tls.SERVER_DAYS - 10)
    assert len(tls.ensure_self_signed(site, names + ["10.1.2.3"], now=later)[2]) == 1


def test_default_names_cover_localhost_and_hub_ip():
    cfg = MLWorkshopConfig.model_validate(
        {"hub": {"ip": "10.9.8.7", "https": {"cert": "self-signed", "names": ["hub.lab"]}}}
    )
    names = tls.default_names(cfg)
    assert names[:3] == ["localhost", "127.0.0.1", "10.9.8.7"] and "hub.lab" in names
    assert len(names) == len(set(names))


# --- the proxy's copy ---------------------------------------------------------------------------
def test_proxy_copy_is_its_groups_alone(tmp_path):
    site = Site(tmp_path)
    cert, key = make_pair(tmp_path / "admin")
    gid = 4242 if os.geteuid() == 0 else None
    cert_copy, key_copy = tls.copy_for_proxy(site, cert, key, gid)
    assert key_copy.read_bytes() == key.read_bytes() and cert_copy.read_bytes() == cert.read_bytes()
    folder, st = key_copy.parent, key_copy.stat()
    if gid is None:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and stat.S_IMODE(st.st_mode) == 0o600
    else:
        assert (
            folder.stat().st_uid,
            folder.stat().st_gid,
            stat.S_IMODE(folder.stat().st_mode),
        ) == (0, gid, 0o750)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, gid, 0o640)
    # HTTPS turned off: the copies go
    tls.prepare_https(site, MLWorkshopConfig())
    assert not folder.exists()


def test_prepare_refuses_a_certificate_without_its_key(tmp_path):
    cfg = MLWorkshopConfig.model_validate({"hub": {"https": {"cert": "/etc/ssl/hub.pem"}}})
    with pytest.raises(tls.TLSError, match="hub.https.key is empty"):
        tls.prepare_https(Site(tmp_path), cfg)


def test_prepare_refuses_a_key_with_self_signed(tmp_path):
    cfg = MLWorkshopConfig.model_validate(
        {"hub": {"https": {"cert": "self-signed", "key": "/etc/ssl/k.pem"}}}
    )
    with pytest.raises(tls.TLSError, match="Leave the key empty"):
        tls.prepare_https(Site(tmp_path), cfg)


def test_prepare_self_signed_prints_the_ca(tmp_path):
    site = Site(tmp_path)
    cfg = MLWorkshopConfig.model_validate(
        {"hub": {"https": {"cert": "self-signed", "redirect_port": 8080}}}
    )
    lines = tls.prepare_https(site, cfg)
    text = "\n".join(lines)
    assert str(tls.ca_path(site)) in text and "SHA-256 fingerprint" in text and "port 8080" in text
    cert_copy, key_copy = tls.proxy_tls_files(site)
    assert key_copy.read_bytes() == (tls.tls_secrets(site) / "server.key").read_bytes()
    assert b"PRIVATE KEY" not in "\n".join(lines).encode()  # the key is never printed


@pytest.mark.parametrize(
    "settings, expected",
    [
        (
            {"cert": "fullchain.pem", "key": "/k.pem"},
            "hub.https.cert = 'fullchain.pem': must be an absolute path",
        ),
        (
            {"cert": "self-signed", "key": "self-signed"},
            "hub.https.key = 'self-signed': must be a path",
        ),
        ({"redirect_port": 0}, "hub.https.redirect_port = 0"),
    ],
)
def test_config_errors_name_the_key(tmp_path, settings, expected):
    from mlworkshop.config import ConfigError
    from mlworkshop.config.loader import validate

    with pytest.raises(ConfigError) as info:
        validate({"hub": {"https": settings}}, "mlworkshop.yaml")
    assert expected in str(info.value)
