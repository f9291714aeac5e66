"""NVIDIA GPUs and Huawei Ascend NPUs: inventory, exclusive allocation, profiles, exposure.

Pure parts the hub calls; nothing here imports JupyterHub.
"""

import importlib

# Each name is imported from its module when first asked for (PEP 562): `from .inventory import
# detect` (the `mlworkshop accelerators` command, the config) must not import the allocator, which
# brings SQLAlchemy (a quarter of a second of every command's start).
_WHERE = {
    "allocator": ("Allocator", "DeviceUsage", "Holder", "Limit", "NoDeviceFree", "OverLimit"),
    "exposure": (
        "ascend_devices_and_mounts",
        "docker_device_requests",
        "kubernetes_resources",
        "local_env",
        "local_groups",
    ),
    "grants": ("Grant", "grant"),
    "inventory": ("Device", "Inventory", "detect", "parse_npu_smi_info", "parse_nvidia_smi_csv"),
    "limits": ("effective_limit",),
    "profiles": (
        "InvalidChoice",
        "Profile",
        "options_from_form",
        "profiles_for",
        "validate_choice",
        "why_not_offered",
    ),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})


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
