"""Pick the accelerator a lesson runs on: CUDA, then Ascend NPU (torch_npu), then CPU."""

from __future__ import annotations

import importlib
import os

DEVICE_ENV = "MLWORKSHOP_DEVICE"  # force a device, e.g. "cpu" (used by tests and by teachers)


def choose_device_name(cuda: bool, npu: bool, forced: str | None = None) -> str:
    """The rule, kept free of torch so it can be tested: forced > cuda > npu > cpu."""
    if forced:
        return forced.strip().lower()
    if cuda:
        return "cuda"
    if npu:
        return "npu"
    return "cpu"


def npu_available() -> bool:
    """True when torch_npu imports and reports at least one Ascend NPU."""
    try:
        importlib.import_module("torch_npu")  # registers torch.npu
    except Exception:  # noqa: BLE001 - not installed or broken CANN set-up: no NPU
        return False
    try:
        import torch

        return bool(torch.npu.is_available())  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001
        return False


def _describe(name: str) -> str:
    import torch

    try:
        if name.startswith("cuda"):
            return f"cuda ({torch.cuda.get_device_name(0)})"
        if name.startswith("npu"):
            return f"npu ({torch.npu.get_device_name(0)})"  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001
        pass
    if name == "cpu":
        return f"cpu ({torch.get_num_threads()} 个线程)"
    return name


def pick_device(verbose: bool = True):
    """Return a ``torch.device``: ``cuda`` if present, else Ascend ``npu``, else ``cpu``.

    Set the environment variable ``MLWORKSHOP_DEVICE`` (e.g. ``cpu``) to force one.
    """
    import torch

    forced = os.environ.get(DEVICE_ENV) or None
    cuda = torch.cuda.is_available() if not forced else False
    npu = npu_available() if not (forced or cuda) else False
    name = choose_device_name(cuda, npu, forced)
    device = torch.device(name)
    if verbose:
        how = f"（由环境变量 {DEVICE_ENV} 指定）" if forced else ""
        print(f"使用设备 / device: {_describe(name)}{how}")
    return device
