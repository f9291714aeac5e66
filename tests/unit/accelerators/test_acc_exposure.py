"""How allocated devices reach a server: env, groups, Docker, Ascend container pieces, Kubernetes."""

from __future__ import annotations

from mlworkshop.accelerators.exposure import (
    ascend_devices_and_mounts,
    docker_device_requests,
    kubernetes_resources,
    local_env,
    local_groups,
)
from mlworkshop.accelerators.inventory import Device
from mlworkshop.config.accelerators import AcceleratorsConfig

GPUS = [Device("nvidia", i, f"GPU-{i}", "NVIDIA A100-SXM4-80GB", 81920) for i in range(4)]
NPUS = [Device("ascend", i, None, "910B3", 65536) for i in range(8)]
P310 = [Device("ascend", i, None, "310P3", 21527) for i in range(2)]


def test_local_env_exactly_the_allocated_gpus():
    env = local_env([GPUS[3], GPUS[1]], inventory=GPUS)
    assert env == {
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CUDA_VISIBLE_DEVICES": "1,3",
        "NVIDIA_VISIBLE_DEVICES": "1,3",
    }


def test_local_env_cpu_only_server_on_a_gpu_host_sees_no_gpu():
    env = local_env([], inventory=GPUS + NPUS)
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert env["ASCEND_RT_VISIBLE_DEVICES"] == ""


def test_local_env_npus():
    env = local_env([NPUS[2], NPUS[5]], inventory=NPUS)
    assert env == {"ASCEND_RT_VISIBLE_DEVICES": "2,5"}


def test_local_env_host_without_devices_sets_nothing():
    assert local_env([], inventory=[]) == {}


def test_local_groups_from_config_defaults():
    groups = AcceleratorsConfig().device_groups
    assert local_groups([GPUS[0]], groups) == ["video", "render"]
    assert local_groups([NPUS[0], NPUS[1]], groups) == ["HwHiAiUser"]
    assert local_groups([GPUS[0], NPUS[0]], groups) == ["HwHiAiUser", "video", "render"]
    assert local_groups([], groups) == []


def test_docker_device_requests_name_the_gpus():
    assert docker_device_requests([GPUS[2], GPUS[0]]) == [
        {"Driver": "nvidia", "DeviceIDs": ["0", "2"], "Capabilities": [["gpu"]]}
    ]
    assert docker_device_requests(NPUS) == []


def test_ascend_container_devices_and_driver_mounts():
    spec = ascend_devices_and_mounts([NPUS[1], NPUS[0]])
    assert spec["devices"] == [
        "/dev/davinci0:/dev/davinci0:rwm",
        "/dev/davinci1:/dev/davinci1:rwm",
        "/dev/davinci_manager:/dev/davinci_manager:rwm",
        "/dev/devmm_svm:/dev/devmm_svm:rwm",
        "/dev/hisi_hdc:/dev/hisi_hdc:rwm",
    ]
    for mount in ("/usr/local/Ascend/driver", "/usr/local/bin/npu-smi", "/usr/local/dcmi"):
        assert spec["volumes"][mount] == {"bind": mount, "mode": "ro"}
    assert spec["environment"] == {"ASCEND_VISIBLE_DEVICES": "0,1"}
    assert ascend_devices_and_mounts(GPUS) == {"devices": [], "volumes": {}, "environment": {}}


def test_kubernetes_resource_names_by_chip():
    assert kubernetes_resources(GPUS[:2]) == {"nvidia.com/gpu": "2"}
    assert kubernetes_resources(NPUS[:1]) == {"huawei.com/Ascend910": "1"}
    assert kubernetes_resources(P310) == {"huawei.com/Ascend310P": "2"}
    assert kubernetes_resources([]) == {}
