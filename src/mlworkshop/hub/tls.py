"""HTTPS at the proxy: check the admin's certificate and key, or make a self-signed pair from a CA
of the site's own, and hand the proxy a copy of the key that only its account can read.

Checked at every `mlworkshop up`, before anything starts, because configurable-http-proxy only
reads the files when it starts and then dies with a Node stack trace the admin never connects to
the cause. Each refusal names the key (hub.https.cert / hub.https.key), the value and the fix.

Who reads the key. A root hub runs the proxy as `_mlw-proxy` (service_accounts.py), which cannot
enter <site>/secrets/ (root's, 0700) nor, usually, /etc/letsencrypt/live/ (root's, 0700); and the
admin's own files are not ours to re-own or re-mode (certbot would undo it at its next renewal).
So root reads the key here and writes a copy into <site>/proxy-tls/: a folder owned by root with
group `_mlw-proxy` and mode 0750, the key in it 0640 root:_mlw-proxy. Only root and the proxy's
account (alone in its group; setpriv gives the proxy that group and no other) can read it;
students can neither enter the folder nor replace anything in it (root owns both). The copy is
rewritten at every start, so a renewed certificate reaches the proxy by restarting the hub, and
removed when HTTPS is turned off. A non-root hub's proxy runs as the hub's own user: its copy is
0600 in a 0700 folder.

The self-signed pair: a CA (10 years, made once; students trust it once) and a server
certificate it signs (397 days, made again at `up` when it nears its end, or when the names it
must cover change), all in <site>/secrets/tls/ (keys 0600). ECDSA P-256: small and quick.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm as UnsupportedKey
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..config import MLWorkshopConfig
from ..site import Site

CA_DAYS = 3650
SERVER_DAYS = 397
RENEW_BEFORE = dt.timedelta(days=30)  # a self-signed server certificate is made again this early
WARN_BEFORE = dt.timedelta(days=14)  # an admin's certificate this close to its end gets a warning
PROXY_DIR = "proxy-tls"


class TLSError(ValueError):
    """An HTTPS problem a lab admin can fix; str() names the key, the value and the fix."""


@dataclass(frozen=True)
class CertInfo:
    subject: str
    names: tuple[str, ...]
    not_after: dt.datetime
    fingerprint: str  # SHA-256, AA:BB:... as browsers show it


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def fingerprint(cert: x509.Certificate) -> str:
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def _names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(san.get_values_for_type(x509.DNSName)) + tuple(
        str(a) for a in san.get_values_for_type(x509.IPAddress)
    )


def info(cert: x509.Certificate) -> CertInfo:
    return CertInfo(
        cert.subject.rfc4514_string(), _names(cert), cert.not_valid_after_utc, fingerprint(cert)
    )


def _read(path: Path, key: str) -> bytes:
    fix = f"Fix the path: `mlworkshop config set {key} PATH`."
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TLSError(f"{key} = {str(path)!r}: no such file. {fix}") from None
    except IsADirectoryError:
        raise TLSError(f"{key} = {str(path)!r}: is a folder, not a PEM file. {fix}") from None
    except PermissionError:
        raise TLSError(
            f"{key} = {str(path)!r}: cannot be read (permission denied). Start the hub as root, "
            f"or let the hub's user read it."
        ) from None
    except OSError as exc:
        raise TLSError(f"{key} = {str(path)!r}: cannot be read ({exc.strerror}). {fix}") from None


def load_certificates(path: Path, key: str = "hub.https.cert") -> list[x509.Certificate]:
    """The certificate and the chain after it (the first one is the server's)."""
    data = _read(path, key)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise TLSError(
            f"{key} = {str(path)!r}: holds no PEM certificate (a file beginning with "
            "-----BEGIN CERTIFICATE-----, such as certbot's fullchain.pem). Point it at the certificate."
        )
    return certs


def load_key(path: Path, key: str = "hub.https.key"):
    data = _read(path, key)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:  # encrypted: the proxy starts unattended and cannot ask for a passphrase
        raise TLSError(
            f"{key} = {str(path)!r}: the key is encrypted with a passphrase, which the proxy cannot "
            f"ask for. Write an unencrypted copy (`openssl pkey -in {path} -out KEY.pem`, kept 0600) "
            f"and set {key} to it."
        ) from None
    except (ValueError, UnsupportedKey) as exc:
        raise TLSError(
            f"{key} = {str(path)!r}: is not a PEM private key ({exc}). Point it at the "
            "certificate's private key (certbot: privkey.pem)."
        ) from None


def _public(obj) -> bytes:
    return obj.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_pair(
    cert_path: Path,
    key_path: Path,
    now: dt.datetime | None = None,
    keys: tuple[str, str] = ("hub.https.cert", "hub.https.key"),
) -> tuple[CertInfo, list[str]]:
    """The server certificate's details and warnings; TLSError when the proxy could not serve it:
    a file missing or unreadable, not PEM, an encrypted key, a key of another certificate, a
    certificate expired or not valid yet."""
    now = now or _now()
    cert_key, key_key = keys
    cert = load_certificates(cert_path, cert_key)[0]
    private = load_key(key_path, key_key)
    if _public(private) != _public(cert):
        raise TLSError(
            f"{key_key} = {str(key_path)!r} is not the key of the certificate {cert_key} = "
            f"{str(cert_path)!r} ({cert.subject.rfc4514_string()}). Set {key_key} to the key the "
            "certificate was made for (certbot: privkey.pem beside fullchain.pem)."
        )
    if cert.not_valid_after_utc < now:
        raise TLSError(
            f"{cert_key} = {str(cert_path)!r} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC. "
            "Renew it (certbot: `certbot renew`) or ask for a new one, then start the hub again."
        )
    if cert.not_valid_before_utc > now:
        raise TLSError(
            f"{cert_key} = {str(cert_path)!r} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} "
            "UTC. Check this machine's clock (`date`), or wait until then."
        )
    warnings = []
    if cert.not_valid_after_utc - now < WARN_BEFORE:
        warnings.append(
            f"{cert_key} = {str(cert_path)!r} expires on {cert.not_valid_after_utc:%Y-%m-%d} UTC: renew it soon."
        )
    return info(cert), warnings


# --- self-signed ----------------------------------------------------------------------------
def tls_secrets(site: Site) -> Path:
    return site.secrets / "tls"


def ca_path(site: Site) -> Path:
    return tls_secrets(site) / "ca.pem"


def default_names(cfg: MLWorkshopConfig) -> list[str]:
    """What a self-signed certificate covers: localhost, 127.0.0.1, hub.ip, this machine's names
    and main address, and hub.https.names."""
    names = ["localhost", "127.0.0.1"]
    if cfg.hub.ip not in ("", "0.0.0.0", "::", "localhost"):
        names.append(cfg.hub.ip)
    host = socket.gethostname()
    names += [host, socket.getfqdn()]
    try:  # the address of the default route (a UDP "connect" sends nothing)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("192.0.2.1", 9))
            names.append(sock.getsockname()[0])
    except OSError:
        pass
    names += cfg.hub.https.names
    seen: list[str] = []
    for name in names:
        if name and name not in seen:
            seen.append(name)
    return seen


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Atomically (a temporary file renamed over it), never through a link, made `mode` from the start."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _make_ca(folder: Path, now: dt.datetime):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mlworkshop"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"mlworkshop CA on {socket.gethostname()}"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(folder / "ca.key", _pem_key(key))
    _write_private(folder / "ca.pem", cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key


def _make_server(folder: Path, ca_cert, ca_key, names: list[str], now: dt.datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mlworkshop"),
            x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(folder / "server.key", _pem_key(key))
    _write_private(folder / "server.pem", cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _server_is_current(folder: Path, ca_cert, names: list[str], now: dt.datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate((folder / "server.pem").read_bytes())
        key = serialization.load_pem_private_key(
            (folder / "server.key").read_bytes(), password=None
        )
    except (OSError, ValueError, TypeError):
        return False
    return (
        cert.issuer == ca_cert.subject
        and _public(key) == _public(cert)
        and cert.not_valid_after_utc - now > RENEW_BEFORE
        and set(names) <= set(_names(cert))
    )


def ensure_self_signed(
    site: Site, names: list[str], now: dt.datetime | None = None
) -> tuple[Path, Path, list[str]]:
    """(certificate, key, what was done): the CA is made once and kept; the server certificate
    is made again when missing, near its end, or not covering `names`."""
    now = now or _now()
    folder = tls_secrets(site)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    done = []
    try:
        ca_cert = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
        ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), password=None)
        if _public(ca_key) != _public(ca_cert):
            raise ValueError("CA key does not match")
    except FileNotFoundError:
        ca_cert, ca_key = _make_ca(folder, now)
        done.append(f"made a certificate authority for this site's HTTPS: {folder / 'ca.pem'}")
    except (OSError, ValueError, TypeError) as exc:
        raise TLSError(
            f"hub.https.cert = 'self-signed': the site's CA in {folder} cannot be used ({exc}). "
            f"Move {folder} aside to make a new one (students must then trust the new CA)."
        ) from None
    if not _server_is_current(folder, ca_cert, names, now):
        _make_server(folder, ca_cert, ca_key, names, now)
        done.append(f"made a server certificate for {', '.join(names)} (valid {SERVER_DAYS} days)")
    return folder / "server.pem", folder / "server.key", done


# --- the proxy's copy -----------------------------------------------------------------------
def proxy_tls_files(site: Site) -> tuple[Path, Path]:
    """Where the proxy reads its certificate and key (what configure.py hands JupyterHub)."""
    folder = site.root / PROXY_DIR
    return folder / "cert.pem", folder / "key.pem"


def _proxy_folder(site: Site, gid: int | None) -> Path:
    folder = site.root / PROXY_DIR
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        os.mkdir(folder, 0o700)
        st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise TLSError(
            f"{folder} is not a folder of the hub's user: remove it and start the hub again."
        )
    if gid is not None:
        os.chown(folder, 0, gid, follow_symlinks=False)
    os.chmod(folder, 0o750 if gid is not None else 0o700, follow_symlinks=False)
    return folder


def copy_for_proxy(site: Site, cert: Path, key: Path, gid: int | None) -> tuple[Path, Path]:
    """The certificate chain and key, copied where the proxy's account (group `gid`; None: the
    hub's own user) reads them and no one else does."""
    _proxy_folder(site, gid)  # made (or its mode mended) before anything is written in it
    cert_copy, key_copy = proxy_tls_files(site)
    for source, target in ((cert, cert_copy), (key, key_copy)):
        _write_private(target, source.read_bytes(), 0o600)
        if gid is not None:
            os.chown(target, 0, gid, follow_symlinks=False)
            os.chmod(target, 0o640, follow_symlinks=False)
    return cert_copy, key_copy


def remove_proxy_copy(site: Site) -> None:
    folder = site.root / PROXY_DIR
    for path in proxy_tls_files(site):
        path.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass


def prepare_https(site: Site, cfg: MLWorkshopConfig, proxy_gid: int | None = None) -> list[str]:
    """Before the hub starts (`mlworkshop up`): check or make the certificate and key, copy them
    for the proxy. Returns lines for the admin; raises TLSError with the fix."""
    https = cfg.hub.https
    if not https.enabled:
        remove_proxy_copy(site)  # no key lingers where the proxy could read it
        return (
            [
                "warning: hub.https.key is set but hub.https.cert is empty, so HTTPS is off. Set hub.https.cert "
                "too, or `mlworkshop config set hub.https.key null`."
            ]
            if https.key
            else []
        )
    if https.self_signed and https.key:
        raise TLSError(
            f"hub.https.key = {https.key!r} is set with hub.https.cert = 'self-signed', whose key is made "
            "and kept in <site>/secrets/tls/. Leave the key empty (`mlworkshop config set hub.https.key "
            "null`), or set hub.https.cert to the certificate of that key."
        )
    lines = []
    if https.self_signed:
        cert, key, done = ensure_self_signed(site, default_names(cfg))
        lines += done
    else:
        if not https.key:
            raise TLSError(
                f"hub.https.cert = {https.cert!r} is set but hub.https.key is empty: set the path of its "
                "private key (`mlworkshop config set hub.https.key /path/privkey.pem`), or turn HTTPS off "
                "(`mlworkshop config set hub.https.cert null`)."
            )
        cert, key = Path(https.cert), Path(https.key)
    details, warnings = check_pair(cert, key)
    copy_for_proxy(site, cert, key, proxy_gid)
    lines.append(
        f"HTTPS with {cert} ({', '.join(details.names) or details.subject}; valid until "
        f"{details.not_after:%Y-%m-%d} UTC)"
    )
    if https.self_signed:
        ca = x509.load_pem_x509_certificate(ca_path(site).read_bytes())
        lines.append(
            f"Self-signed: students' browsers must trust the CA {ca_path(site)} "
            f"(SHA-256 fingerprint {fingerprint(ca)}); hand that file out and have them import it as a "
            "trusted authority (it is public: it holds no key)."
        )
    if https.redirect_port:
        lines.append(
            f"Plain HTTP on port {https.redirect_port} (every address) redirects to HTTPS on port {cfg.hub.port}."
        )
    return lines + [f"warning: {w}" for w in warnings]


def prepare_for_proxy(site: Site, cfg: MLWorkshopConfig) -> list[str]:
    """prepare_https for `mlworkshop up`: a root hub's proxy reads as its own account's group
    (made by service_accounts.prepare_helpers first), any other hub's as the hub's user."""
    from .service_accounts import PROXY_ACCOUNT, isolating

    gid = None
    if isolating() and cfg.hub.https.enabled:
        import pwd

        gid = pwd.getpwnam(PROXY_ACCOUNT).pw_gid
    return prepare_https(site, cfg, gid)
