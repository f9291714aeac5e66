"""The accelerators section of mlworkshop.yaml (NVIDIA GPUs, Huawei Ascend NPUs).

Everything the inventory, the allocator and the spawn profiles read comes from here. The model
knows nothing about hardware: detection happens in `mlworkshop.accelerators.inventory`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import Section, check_size

DeviceKind = Literal["nvidia", "ascend"]

_GROUP_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.-]{0,31}$")


class DeviceSpec(Section):
    """One device written by hand, for hosts where detection is impossible (and for tests)."""

    kind: DeviceKind = Field("nvidia", description="nvidia (a GPU) or ascend (an NPU).")
    index: int = Field(
        0, ge=0, le=255, description="Device number: nvidia-smi index, or N of /dev/davinciN."
    )
    uuid: str | None = Field(None, description="GPU UUID (GPU-...), if known.")
    name: str | None = Field(
        None, description="Model name, e.g. 'NVIDIA A100-SXM4-80GB' or '910B3'."
    )
    memory_mib: int | None = Field(None, ge=0, description="Device memory in MiB, if known.")


class CpuProfileLimits(Section):
    cpu_limit: float | None = Field(
        2, gt=0, description="CPUs of a CPU-only server. Empty: no limit."
    )
    mem_limit: str | None = Field(
        "4G", description="Memory of a CPU-only server, e.g. 4G. Empty: no limit."
    )

    @field_validator("mem_limit")
    @classmethod
    def _mem(cls, value: str | None) -> str | None:
        return check_size(value)


class DeviceProfileLimits(Section):
    cpu_limit: float | None = Field(
        4,
        gt=0,
        description="CPUs per device of an accelerator server (2 GPUs: twice this). Empty: no limit.",
    )
    mem_limit: str | None = Field(
        "16G",
        description="Memory per device of an accelerator server (2 GPUs: twice this). Empty: no limit.",
    )

    @field_validator("mem_limit")
    @classmethod
    def _mem(cls, value: str | None) -> str | None:
        return check_size(value)


class ProfilesConfig(Section):
    cpu: CpuProfileLimits = Field(default_factory=CpuProfileLimits)
    per_device: DeviceProfileLimits = Field(default_factory=DeviceProfileLimits)


class AcceleratorsConfig(Section):
    mode: Literal["shared", "exclusive"] = Field(
        "shared",
        description="shared: every server sees every device; exclusive: whole devices per server.",
    )
    detect: bool = Field(
        True,
        description="Look for devices with NVML / nvidia-smi / npu-smi and /dev/davinci*. "
        "Ignored when inventory is set.",
    )
    inventory: list[DeviceSpec] = Field(
        default_factory=list,
        description="Devices written by hand (kind, index, uuid, name, memory_mib); replaces detection. "
        "Empty: detect.",
    )
    slots_per_device: int = Field(
        1,
        ge=1,
        le=64,
        description="exclusive mode: how many servers may share one device (least-loaded first).",
    )
    max_per_user: int = Field(
        1, ge=0, le=1024, description="Most devices one user may hold at once."
    )
    group_limits: dict[str, int] = Field(
        default_factory=dict,
        description="Per-group override of max_per_user, e.g. {staff: 4}. A user in several groups "
        "gets the largest.",
    )
    admins_exempt: bool = Field(
        False, description="Admins are not bound by max_per_user or group_limits."
    )
    device_groups: dict[DeviceKind, list[str]] = Field(
        default_factory=lambda: {"nvidia": ["video", "render"], "ascend": ["HwHiAiUser"]},
        description="System groups a user's account joins to use a device (local backend).",
    )
    profiles: ProfilesConfig = Field(default_factory=ProfilesConfig)

    @field_validator("group_limits")
    @classmethod
    def _limits_not_negative(cls, value: dict[str, int]) -> dict[str, int]:
        for group, limit in value.items():
            if limit < 0:
                raise ValueError(
                    f"group {group!r} has a negative limit ({limit}); use 0 to allow no devices"
                )
        return value

    @field_validator("device_groups")
    @classmethod
    def _group_names(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for kind, groups in value.items():
            for group in groups:
                if not _GROUP_RE.match(group):
                    raise ValueError(f"{kind}: {group!r} is not a valid system group name")
        return value

    @model_validator(mode="after")
    def _inventory_unique(self) -> AcceleratorsConfig:
        seen: set[tuple[str, int]] = set()
        for device in self.inventory:
            key = (device.kind, device.index)
            if key in seen:
                raise ValueError(f"inventory lists {device.kind} device {device.index} twice")
            seen.add(key)
        return self
