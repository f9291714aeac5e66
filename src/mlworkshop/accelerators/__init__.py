"""NVIDIA GPUs and Huawei Ascend NPUs: inventory, exclusive allocation, profiles, exposure.

Pure parts the hub calls; nothing here imports JupyterHub.
"""

from .allocator import Allocator, DeviceUsage, Holder, Limit, NoDeviceFree, OverLimit
from .exposure import (
    ascend_devices_and_mounts,
    docker_device_requests,
    kubernetes_resources,
    local_env,
    local_groups,
)
from .grants import Grant, grant
from .inventory import Device, Inventory, detect, parse_npu_smi_info, parse_nvidia_smi_csv
from .limits import effective_limit
from .profiles import (
    InvalidChoice,
    Profile,
    options_from_form,
    profiles_for,
    validate_choice,
    why_not_offered,
)

__all__ = [
    "Allocator",
    "Device",
    "DeviceUsage",
    "Grant",
    "Holder",
    "InvalidChoice",
    "Inventory",
    "Limit",
    "NoDeviceFree",
    "OverLimit",
    "Profile",
    "ascend_devices_and_mounts",
    "detect",
    "docker_device_requests",
    "effective_limit",
    "grant",
    "kubernetes_resources",
    "local_env",
    "local_groups",
    "options_from_form",
    "parse_npu_smi_info",
    "parse_nvidia_smi_csv",
    "profiles_for",
    "validate_choice",
    "why_not_offered",
]
