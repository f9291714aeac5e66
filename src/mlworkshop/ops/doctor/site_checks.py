"""Checks of the site on disk: the proxy binary, free disk, the HTTPS certificate's expiry and the
age of the last backup. None of them needs the hub to run; none repairs anything (each says
what a person does)."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

from .findings import Context, Finding, ok

DISK_WARN, DISK_ERROR = 0.10, 0.02


def check_proxy_binary(ctx: Context) -> list[Finding]:
    from ...hub.proxy_binary import proxy_command

    binary = Path(proxy_command()[0])
    if binary.exists():
        return [ok("proxy-binary", f"configurable-http-proxy is installed ({binary})")]
    return [
        Finding(
            "proxy-binary",
            "error",
            f"configurable-http-proxy is not installed ({binary} is missing): the hub cannot start.",
            "make install (in the mlworkshop checkout)",
        )
    ]


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def check_disk(ctx: Context) -> list[Finding]:
    usage = shutil.disk_usage(ctx.site.root)
    free = usage.free / usage.total if usage.total else 1.0
    what = f"{_size(usage.free)} free of {_size(usage.total)} ({free:.1%}) on the site's disk ({ctx.site.root})"
    if free >= DISK_WARN:
        return [ok("disk", what)]
    severity = "error" if free < DISK_ERROR else "warn"
    backups = (ctx.cfg.backup.dir if ctx.cfg else None) or ctx.site.root / "backups"
    return [
        Finding(
            "disk",
            severity,
            f"{what}: {'notebooks cannot be saved and the databases stop recording' if severity == 'error' else 'the disk is filling up'}.",
            f"free space: see what is largest with `du -xsh {ctx.site.root}/* {ctx.site.users}/* | sort -h | tail`, "
            f"and move old backups out of {backups}",
        )
    ]


def _served_certificate(ctx: Context) -> tuple[Path, str] | None:
    """(file, what) of the certificate students see: the proxy's copy once `up` made it, else
    the configured file (or the self-signed one)."""
    from ...hub.tls import proxy_tls_files, tls_secrets

    cfg = ctx.cfg
    copy, _key = proxy_tls_files(ctx.site)
    if copy.exists():
        return copy, "the certificate the proxy serves"
    if cfg.hub.https.self_signed:
        return tls_secrets(ctx.site) / "server.pem", "the self-signed certificate"
    return Path(cfg.hub.https.cert), "hub.https.cert"


def check_certificate(ctx: Context) -> list[Finding]:
    cfg = ctx.cfg
    if cfg is None or not cfg.hub.https.enabled:
        return []
    from ...hub.tls import TLSError, load_certificates

    found = _served_certificate(ctx)
    path, what = found
    renew = (
        "restart the hub (`mlworkshop service restart` or `mlworkshop up`): it makes a new self-signed certificate"
        if cfg.hub.https.self_signed
        else "renew it (e.g. `certbot renew`), then restart the hub"
    )
    try:
        cert = load_certificates(path)[0]
    except TLSError as exc:
        if not path.exists() and cfg.hub.https.self_signed:
            return [ok("certificate", "self-signed: made when the hub starts")]
        return [Finding("certificate", "error", str(exc), renew)]
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    when = cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
    if left.total_seconds() <= 0:
        return [
            Finding(
                "certificate",
                "error",
                f"{what} ({path}) expired on {when}: browsers refuse the hub.",
                renew,
            )
        ]
    if left.days < cfg.doctor.cert_warn_days:
        return [
            Finding(
                "certificate",
                "warn",
                f"{what} ({path}) expires on {when}, in {left.days} day(s).",
                renew,
            )
        ]
    return [ok("certificate", f"{what} is valid until {when}")]


def newest_backup(site, cfg) -> tuple[Path, float] | None:
    """(archive, mtime) of the newest mlworkshop-*.tar.gz in backup.dir, or None."""
    folder = (cfg.backup.dir if cfg else None) or site.root / "backups"
    try:
        found = [
            (p, p.lstat().st_mtime)
            for p in folder.glob("mlworkshop-*.tar.gz")
            if p.is_file() and not p.is_symlink()
        ]
    except OSError:
        return None
    return max(found, key=lambda item: item[1]) if found else None


def check_backup_age(ctx: Context) -> list[Finding]:
    cfg = ctx.cfg
    if cfg is None:
        return []
    folder = cfg.backup.dir or ctx.site.root / "backups"
    newest = newest_backup(ctx.site, cfg)
    if newest is None:
        return [
            Finding(
                "backup",
                "warn",
                f"No backup in {folder}: a lost disk loses every account, notebook and usage record.",
                "mlworkshop backup"
                + (
                    ""
                    if cfg.backup.schedule
                    else "; and schedule them: `mlworkshop config set backup.schedule daily` then `mlworkshop backup --install-timer`"
                ),
            )
        ]
    path, mtime = newest
    hours = (time.time() - mtime) / 3600
    if cfg.backup.schedule and hours > cfg.doctor.backup_max_age_hours:
        return [
            Finding(
                "backup",
                "warn",
                f"The newest backup ({path.name}) is {hours:.0f} h old although backup.schedule is "
                f"{cfg.backup.schedule!r}: scheduled backups are not running.",
                "see `systemctl status 'mlworkshop-backup-*'`; reinstall with `mlworkshop backup --install-timer`",
            )
        ]
    return [ok("backup", f"newest backup {path.name}, {hours:.1f} h old")]
