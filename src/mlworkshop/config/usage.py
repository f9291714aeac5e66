"""The usage section of mlworkshop.yaml: accounting, rates, quotas and the usage service.

Knows nothing about JupyterHub or the database; `mlworkshop.usage` reads it.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from .base import Section, check_db_url

_NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class RatesConfig(Section):
    cpu_hour: float = Field(0.0, ge=0, description="Cost of one CPU-hour (CPU time actually used).")
    mem_gib_hour: float = Field(
        0.0, ge=0, description="Cost of one GiB of memory held for one hour."
    )
    gpu_hour: float = Field(0.0, ge=0, description="Cost of one GPU held for one hour.")
    npu_hour: float = Field(0.0, ge=0, description="Cost of one NPU held for one hour.")
    currency: str = Field("EUR", max_length=8, description="Currency shown next to costs.")


class Budget(Section):
    """Limits of one user (or of each member of a group). Empty: no limit."""

    gpu_hours_per_week: float | None = Field(
        None,
        ge=0,
        description="Accelerator device-hours (GPU or NPU) per week (Monday 00:00 UTC on). Empty: no limit.",
    )
    cpu_hours_per_week: float | None = Field(
        None, ge=0, description="CPU-hours actually used per week. Empty: no limit."
    )
    max_servers: int | None = Field(
        None, ge=0, description="Servers running at once. Empty: no limit."
    )
    max_devices: int | None = Field(
        None, ge=0, description="Accelerators held at once. Empty: no limit."
    )


class QuotasConfig(Section):
    default: Budget = Field(default_factory=Budget, description="Budget of every user.")
    groups: dict[str, Budget] = Field(
        default_factory=dict,
        description="Per-group budgets, e.g. {staff: {gpu_hours_per_week: 40}}. A user in several groups "
        "gets the most generous value of each limit; a group value replaces the default.",
    )
    users: dict[str, Budget] = Field(
        default_factory=dict,
        description="Per-user overrides (set limits replace group and default values).",
    )
    admins_exempt: bool = Field(True, description="Admins are not bound by quotas.")

    @field_validator("groups", "users")
    @classmethod
    def _names(cls, value: dict[str, Budget]) -> dict[str, Budget]:
        for name in value:
            if not _NAME_RE.match(name):
                raise ValueError(f"{name!r} is not a valid user or group name")
        return value


class UsageConfig(Section):
    enabled: bool = Field(True, description="Record every server session and its resource use.")
    db_url: str | None = Field(
        None,
        description="Usage database URL (e.g. postgresql://user@127.0.0.1:5432/usage). "
        "Empty: SQLite in <site>/usage/usage.sqlite (the usage service's own folder).",
    )
    sample_every: float = Field(
        60,
        ge=0.2,
        le=3600,
        description="Seconds between two samples of each running server's CPU and memory.",
    )
    rates: RatesConfig = Field(default_factory=RatesConfig)
    quotas: QuotasConfig = Field(default_factory=QuotasConfig)
    warn_at: float = Field(
        0.9, gt=0, le=1, description="Warn a user once this fraction of a weekly budget is used."
    )
    grace_minutes: float = Field(
        10,
        ge=0,
        le=10080,
        description="Minutes a server may keep running after its user's budget is spent.",
    )
    enforce_cpu_only: bool = Field(
        False,
        description="Also stop CPU-only servers when cpu_hours_per_week is spent (else only warn).",
    )
    failover_open: bool = Field(
        True,
        description="When usage data is unavailable (database down): true lets servers start and keep "
        "running; false refuses new starts.",
    )
    service_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Loopback port of the usage service (API and dashboards; the proxy serves it at "
        "/services/usage/). 0: a free port chosen at each start.",
    )

    @field_validator("db_url")
    @classmethod
    def _db_url_scheme(cls, value: str | None) -> str | None:
        return check_db_url(value)
