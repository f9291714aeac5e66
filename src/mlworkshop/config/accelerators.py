"""The accelerators section of mlworkshop.yaml (NVIDIA GPUs, Huawei Ascend NPUs)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class AcceleratorsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    mode: Literal["shared", "exclusive"] = Field(
        "shared", description="shared: every server sees every device; exclusive: whole devices per server."
    )
