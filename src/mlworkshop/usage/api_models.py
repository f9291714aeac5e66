"""The usage service's API models: request bodies and responses. The OpenAPI spec
(<prefix>openapi.json) is generated from these, and tests/integration/test_usage_api_schema.py
runs schemathesis against it, so a change here is a change of the API.

(The database's tables are in models.py.)
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, Field

PRINTABLE = r"^[^\x00-\x1f\x7f]*$"  # no NUL or control characters (PostgreSQL refuses NUL in text)


class SessionOut(BaseModel):
    id: int
    user: str
    server: str
    backend: str
    profile: str | None
    device_kind: str | None
    n_devices: int
    devices: list[str]
    groups: list[str]
    start: str
    end: str | None
    end_reason: str | None
    last_seen: str | None


class SessionIn(BaseModel):
    user: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
    server: str = Field("", max_length=255, pattern=PRINTABLE)
    backend: str = Field("local", max_length=32, pattern=PRINTABLE)
    profile: str | None = Field(None, max_length=64, pattern=PRINTABLE)
    devices: list[Annotated[str, Field(max_length=64, pattern=PRINTABLE)]] = Field(
        default_factory=list, max_length=64
    )
    device_kind: Literal["nvidia", "ascend"] | None = None
    n_devices: int = Field(0, ge=0, le=64)
    start: dt.datetime | None = None


class SessionEnd(BaseModel):
    reason: str = Field("admin", min_length=1, max_length=32, pattern=PRINTABLE)
    end: dt.datetime | None = None


class SampleOut(BaseModel):
    ts: str
    interval_s: float
    cpu_seconds: float
    mem_bytes: int
    gpu_util: float | None
    gpu_mem_bytes: int | None


class CurrentUse(BaseModel):
    cpu_cores: float
    memory_gib: float
    gpu: int


class QuotaOut(BaseModel):
    gpu_hours_per_week: float | None
    cpu_hours_per_week: float | None
    max_servers: int | None
    max_devices: int | None
    source: str


class WeekUse(BaseModel):
    gpu_hours: float
    cpu_hours: float
    servers: int
    devices: int


class Left(BaseModel):
    gpu_hours: float | None
    cpu_hours: float | None
    servers: int | None
    devices: int | None


class LimitsOut(BaseModel):
    cpu_limit_cores: float | None
    memory_limit_gib: float | None
    gpu_limit: int | None
    usage: CurrentUse
    quota: QuotaOut
    used_this_week: WeekUse
    remaining: Left
    state: Literal["ok", "warn", "over"]
    message: str
    oom_kills: int | None = Field(
        None,
        description="Processes of the user's running server the out-of-memory killer stopped "
        "(local backend with cgroups; null: not known).",
    )


class QuotaIn(BaseModel):
    unlimited: bool = False
    gpu_hours_per_week: float | None = Field(None, ge=0, le=1e6)
    cpu_hours_per_week: float | None = Field(None, ge=0, le=1e6)
    max_servers: int | None = Field(None, ge=0, le=10000)
    max_devices: int | None = Field(None, ge=0, le=10000)


class ReportRowOut(BaseModel):
    key: str
    sessions: int
    cpu_hours: float
    mem_gib_hours: float
    gpu_hours: float
    npu_hours: float
    cost: float


class ReportOut(BaseModel):
    by: str
    start: str
    end: str
    currency: str
    rows: list[ReportRowOut]
    total: ReportRowOut


class LiveServer(BaseModel):
    session_id: int
    user: str
    server: str
    profile: str | None
    devices: list[str]
    start: str
    cpu_percent: float | None
    mem_mib: float | None
    gpu_util: float | None
    sampled_at: str | None


class Me(BaseModel):
    name: str
    kind: str
    admin: bool
    read_all: bool


class Health(BaseModel):
    ok: bool
    rounds: int
    last_round_ms: float | None
    last_round_servers: int


class Message(BaseModel):
    message: str
