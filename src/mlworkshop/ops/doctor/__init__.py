"""`mlworkshop doctor`: is everything healthy, and repair what is safe to repair.

One small function per check (site_checks, permissions, databases, hub_checks, backend_checks),
each returning Findings (findings.py). `run_doctor` runs them all; with fix=True it applies the
safe repairs and looks again, so what it reports is what remains. The watch service (watch.py)
does the same on a schedule, run by the hub.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ...config import ConfigError, load_config
from ...site import Site
from . import backend_checks, databases, hub_checks, permissions, site_checks
from .findings import RANK, Context, Finding
from .hubclient import HubClient

CHECKS: list[tuple[str, Callable[[Context], list[Finding]]]] = [
    ("proxy-binary", site_checks.check_proxy_binary),
    ("hub", hub_checks.check_hub),
    ("ports", hub_checks.check_ports),
    ("hub-database", databases.check_hub_database),
    ("usage-database", databases.check_usage_database),
    ("disk", site_checks.check_disk),
    ("content-permissions", permissions.check_content),
    ("submissions-permissions", permissions.check_submissions),
    ("fork-server", hub_checks.check_fork_server),
    ("usage-service", hub_checks.check_usage_service),
    ("backend", backend_checks.check_backend),
    ("accelerators", backend_checks.check_accelerators),
    ("stale-server", hub_checks.check_stale_servers),
    ("orphans", hub_checks.check_orphans),
    ("certificate", site_checks.check_certificate),
    ("backup", site_checks.check_backup_age),
]

__all__ = ["CHECKS", "Finding", "Report", "run_doctor", "worst"]


@dataclass
class Report:
    findings: list[Finding]
    repairs: list[dict] = field(default_factory=list)  # {id, done} or {id, failed}

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def as_dict(self) -> dict:
        return {
            "status": worst(self.findings),
            "findings": [f.as_dict() for f in self.findings],
            "repairs": self.repairs,
        }


def worst(findings: list[Finding]) -> str:
    return max((f.severity for f in findings), key=RANK.__getitem__, default="ok")


def _context(site: Site) -> tuple[Context, list[Finding]]:
    if not site.config_file.exists():
        return Context(site, None), [
            Finding(
                "config",
                "error",
                f"no site at {site.root} (no {site.config_file.name}).",
                f"mlworkshop init --site {site.root}",
            )
        ]
    try:
        cfg = load_config(site.root)
    except ConfigError as exc:
        return Context(site, None), [
            Finding(
                "config",
                "error",
                str(exc),
                "edit mlworkshop.yaml, then `mlworkshop config validate`",
            )
        ]
    found = [Finding("config", "ok", f"{site.config_file} is valid")]
    return Context(site, cfg, HubClient.connect(site, cfg)), found


def check_all(site: Site) -> tuple[Context, list[Finding]]:
    ctx, findings = _context(site)
    if ctx.cfg is None:
        return ctx, findings
    for name, check in CHECKS:
        try:
            findings += check(ctx)
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            findings.append(
                Finding(name, "error", f"the check could not run: {type(exc).__name__}: {exc}", "")
            )
    return ctx, findings


def run_doctor(site: Site, fix: bool = False) -> Report:
    ctx, findings = check_all(site)
    try:
        if not fix:
            return Report(findings)
        repairs = []
        for finding in findings:
            if finding.severity == "ok" or finding.repair is None:
                continue
            try:
                repairs.append({"id": finding.id, "done": finding.repair()})
            except Exception as exc:  # noqa: BLE001 - reported, and the finding stays
                repairs.append({"id": finding.id, "failed": f"{type(exc).__name__}: {exc}"})
        if not repairs:
            return Report(findings, repairs)
        if ctx.hub is not None:
            ctx.hub.close()
        ctx, findings = check_all(site)  # what remains after the repairs
        return Report(findings, repairs)
    finally:
        if ctx.hub is not None:
            ctx.hub.close()
