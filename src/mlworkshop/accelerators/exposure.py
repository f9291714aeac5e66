"""How allocated devices reach a user's server, per backend, as plain data.

Pure functions: the local spawner applies `local_env` and `local_groups`; DockerSpawner gets
`docker_device_requests` (NVIDIA) or `ascend_devices_and_mounts` (Ascend) in its host config;
KubeSpawner gets `kubernetes_resources` as extra resource limits (there the device plugin picks the
device, so only the count matters).

Note: on the local backend the environment variables steer CUDA / CANN but do not fence the
device off: the device groups open all devices of a kind. Containers are the hard boundary.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from .inventory import Device, chip_family

ASCEND_CONTROL_DEVICES = ("/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc")
ASCEND_DRIVER_MOUNTS = (
    "/usr/local/Ascend/driver",
    "/usr/local/bin/npu-smi",
    "/usr/local/dcmi",
    "/etc/ascend_install.info",
)


def _ids(devices: Iterable[Device], kind: str) -> list[str]:
    return [str(d.index) for d in sorted(devices) if d.kind == kind]


def local_env(devices: Sequence[Device], inventory: Sequence[Device] = ()) -> dict[str, str]:
    """Environment that shows a server exactly its devices.

    Kinds in `inventory` the server got none of are hidden (CUDA_VISIBLE_DEVICES="" means no GPU),
    so a CPU-only server on a GPU host does not quietly use a GPU someone else holds.
    CUDA_DEVICE_ORDER=PCI_BUS_ID makes CUDA count like nvidia-smi/NVML, whose indices we store.
    """
    env: dict[str, str] = {}
    kinds = {d.kind for d in devices} | {d.kind for d in inventory}
    if "nvidia" in kinds:
        gpus = ",".join(_ids(devices, "nvidia"))
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        env["CUDA_VISIBLE_DEVICES"] = gpus
        env["NVIDIA_VISIBLE_DEVICES"] = gpus or "void"
    if "ascend" in kinds:
        env["ASCEND_RT_VISIBLE_DEVICES"] = ",".join(_ids(devices, "ascend"))
    return env


def local_groups(
    devices: Sequence[Device], device_groups: Mapping[str, Sequence[str]]
) -> list[str]:
    """System groups the user's account needs for these devices (config accelerators.device_groups)."""
    groups: list[str] = []
    for kind in sorted({d.kind for d in devices}):
        for group in device_groups.get(kind, ()):
            if group not in groups:
                groups.append(group)
    return groups


def docker_device_requests(devices: Sequence[Device]) -> list[dict]:
    """Docker Engine API DeviceRequests (docker SDK `DeviceRequest` shape) for the NVIDIA GPUs.

    Count is left out: the Engine refuses Count together with DeviceIDs.
    """
    gpus = _ids(devices, "nvidia")
    if not gpus:
        return []
    return [{"Driver": "nvidia", "DeviceIDs": gpus, "Capabilities": [["gpu"]]}]


def ascend_devices_and_mounts(devices: Sequence[Device]) -> dict[str, object]:
    """Docker host-config pieces for Ascend NPUs: the chips' /dev/davinci<N>, the shared control
    devices, and read-only mounts of the driver and npu-smi (the image carries CANN, not the driver).

    {"devices": ["/dev/davinci0:/dev/davinci0:rwm", ...],
     "volumes": {"/usr/local/Ascend/driver": {"bind": "/usr/local/Ascend/driver", "mode": "ro"}, ...},
     "environment": {"ASCEND_VISIBLE_DEVICES": "0,1"}}
    """
    npus = _ids(devices, "ascend")
    if not npus:
        return {"devices": [], "volumes": {}, "environment": {}}
    paths = [f"/dev/davinci{n}" for n in npus] + list(ASCEND_CONTROL_DEVICES)
    return {
        "devices": [f"{p}:{p}:rwm" for p in paths],
        "volumes": {m: {"bind": m, "mode": "ro"} for m in ASCEND_DRIVER_MOUNTS},
        "environment": {"ASCEND_VISIBLE_DEVICES": ",".join(npus)},
    }


def kubernetes_resources(devices: Sequence[Device]) -> dict[str, str]:
    """Extra resource limits: nvidia.com/gpu, and huawei.com/Ascend910 / Ascend310P / Ascend310
    (the names the Ascend device plugin advertises, by chip family)."""
    limits: dict[str, int] = {}
    for d in devices:
        name = "nvidia.com/gpu" if d.kind == "nvidia" else f"huawei.com/{chip_family(d)}"
        limits[name] = limits.get(name, 0) + 1
    return {name: str(count) for name, count in sorted(limits.items())}
