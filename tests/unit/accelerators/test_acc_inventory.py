"""Parsing recorded nvidia-smi / npu-smi output, and the order of detection."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlworkshop.accelerators.inventory import (
    Device,
    ToolError,
    chip_family,
    detect,
    parse_davinci_files,
    parse_npu_smi_info,
    parse_nvidia_smi_csv,
)
from mlworkshop.config.accelerators import AcceleratorsConfig


# --- nvidia-smi -------------------------------------------------------------------------
def test_nvidia_smi_no_devices_is_an_empty_list(recorded_output):
    text, status = recorded_output("nvidia-smi/0-gpus.txt")
    assert status == 6
    assert parse_nvidia_smi_csv(text) == []
    assert parse_nvidia_smi_csv("") == []


def test_nvidia_smi_one_gpu(recorded_output):
    (gpu,) = parse_nvidia_smi_csv(recorded_output("nvidia-smi/1-gpu.csv")[0])
    assert (gpu.kind, gpu.index, gpu.name, gpu.memory_mib) == ("nvidia", 0, "NVIDIA H200", 143771)
    assert gpu.uuid == "GPU-3f9c1a52-8e7d-4b1a-9c2e-5d6f7a8b9c0d"
    assert gpu.source == "nvidia-smi" and gpu.label == "GPU 0"


def test_nvidia_smi_eight_gpus(recorded_output):
    gpus = parse_nvidia_smi_csv(recorded_output("nvidia-smi/8-gpus.csv")[0])
    assert [g.index for g in gpus] == list(range(8))
    assert {g.name for g in gpus} == {"NVIDIA A100-SXM4-80GB"}
    assert {g.memory_mib for g in gpus} == {81920}
    assert len({g.uuid for g in gpus}) == 8


def test_nvidia_smi_name_with_comma_and_nounits(recorded_output):
    first, second = parse_nvidia_smi_csv(
        recorded_output("nvidia-smi/name-with-comma-nounits.csv")[0]
    )
    assert first.name == "Quadro RTX 8000, Passive" and first.memory_mib == 46080
    assert second.name == "NVIDIA GeForce RTX 4090" and second.memory_mib == 24564


def test_nvidia_smi_driver_error_is_a_tool_error_with_its_words(recorded_output):
    text, status = recorded_output("nvidia-smi/driver-error.txt")
    assert status == 9
    with pytest.raises(ToolError, match="couldn't communicate with the NVIDIA driver"):
        parse_nvidia_smi_csv(text)


# --- npu-smi ----------------------------------------------------------------------------
def test_npu_smi_atlas800_eight_910b(recorded_output):
    npus = parse_npu_smi_info(recorded_output("npu-smi/atlas800-8x910b3.txt")[0])
    assert [n.index for n in npus] == list(range(8))  # the process table adds nothing
    assert {n.name for n in npus} == {"910B3"}
    assert {n.memory_mib for n in npus} == {65536}  # HBM, not the (0 / 0) DDR column
    assert {n.kind for n in npus} == {"ascend"} and npus[3].label == "NPU 3"


def test_npu_smi_two_310p_cards(recorded_output):
    npus = parse_npu_smi_info(recorded_output("npu-smi/2x310p3.txt")[0])
    assert [(n.index, n.name, n.memory_mib) for n in npus] == [
        (0, "310P3", 21527),
        (1, "310P3", 21527),
    ]


def test_npu_smi_310p_device_column_wins_over_npu_id(recorded_output):
    (npu,) = parse_npu_smi_info(recorded_output("npu-smi/1x310p3-npu6.txt")[0])
    assert npu.index == 0  # NPU id 6, logic Device 0 -> /dev/davinci0


def test_npu_smi_table_without_chips_is_zero_devices(recorded_output):
    assert parse_npu_smi_info(recorded_output("npu-smi/no-devices.txt")[0]) == []


def test_npu_smi_dcmi_error_is_a_tool_error(recorded_output):
    text, status = recorded_output("npu-smi/dcmi-error.txt")
    assert status == 255
    with pytest.raises(ToolError, match="-8005"):
        parse_npu_smi_info(text)
    with pytest.raises(ToolError):
        parse_npu_smi_info("")


def test_davinci_files_skip_control_devices():
    names = ["davinci3", "davinci_manager", "davinci0", "devmm_svm", "hisi_hdc", "davinci10"]
    assert [d.index for d in parse_davinci_files(names)] == [0, 3, 10]


@pytest.mark.parametrize(
    "name, family",
    [
        ("910B3", "Ascend910"),
        ("910B", "Ascend910"),
        ("Ascend910", "Ascend910"),
        ("310P3", "Ascend310P"),
        ("310", "Ascend310"),
        (None, "Ascend910"),
    ],
)
def test_chip_family(name, family):
    assert chip_family(Device("ascend", 0, name=name)) == family


# --- detect -----------------------------------------------------------------------------
def _cfg(**values) -> AcceleratorsConfig:
    return AcceleratorsConfig(**values)


def test_detect_nvidia_smi_fallback_when_nvml_is_missing(empty_dev, recorded_run):
    run = recorded_run(nvidia_smi="nvidia-smi/8-gpus.csv")
    inv = detect(_cfg(), run=run, dev_dir=empty_dev, nvml=None)
    assert len(inv.devices) == 8 and inv.kinds == ["nvidia"]
    assert run.calls[0] == [
        "nvidia-smi",
        "--query-gpu=index,uuid,name,memory.total",
        "--format=csv,noheader",
    ]
    assert any("nvidia-ml-py is not installed" in n for n in inv.notes)
    assert "nvidia-smi: 8 NVIDIA GPU(s)" in inv.notes
    assert "npu-smi: npu-smi not found" in inv.notes


def test_detect_zero_gpus_exit_6_is_not_an_error(empty_dev, recorded_run):
    inv = detect(
        _cfg(), run=recorded_run(nvidia_smi="nvidia-smi/0-gpus.txt"), dev_dir=empty_dev, nvml=None
    )
    assert inv.devices == [] and "nvidia-smi: 0 NVIDIA GPU(s)" in inv.notes


def test_detect_driver_error_is_reported_not_raised(empty_dev, recorded_run):
    inv = detect(
        _cfg(),
        run=recorded_run(nvidia_smi="nvidia-smi/driver-error.txt"),
        dev_dir=empty_dev,
        nvml=None,
    )
    assert inv.devices == []
    (note,) = [n for n in inv.notes if n.startswith("nvidia-smi:")]
    assert "exit 9" in note and "couldn't communicate with the NVIDIA driver" in note


def test_detect_timeout_is_reported(empty_dev, recorded_run):
    run = recorded_run(nvidia_smi=subprocess.TimeoutExpired("nvidia-smi", 20))
    inv = detect(_cfg(), run=run, dev_dir=empty_dev, nvml=None)
    assert "nvidia-smi: nvidia-smi did not answer within 20 s" in inv.notes


def test_detect_ascend_by_npu_smi(empty_dev, recorded_run):
    inv = detect(
        _cfg(),
        run=recorded_run(npu_smi="npu-smi/atlas800-8x910b3.txt"),
        dev_dir=empty_dev,
        nvml=None,
    )
    assert [d.key for d in inv.devices] == [("ascend", i) for i in range(8)]
    assert "npu-smi: 8 Ascend NPU(s)" in inv.notes


def test_detect_ascend_falls_back_to_device_files(tmp_path: Path, recorded_run):
    for name in ("davinci0", "davinci1", "davinci_manager", "devmm_svm", "hisi_hdc"):
        (tmp_path / name).touch()
    inv = detect(
        _cfg(), run=recorded_run(npu_smi="npu-smi/dcmi-error.txt"), dev_dir=tmp_path, nvml=None
    )
    assert [(d.kind, d.index, d.source) for d in inv.devices] == [
        ("ascend", 0, "dev"),
        ("ascend", 1, "dev"),
    ]
    assert any("dcmi module initialize failed" in n and "exit 255" in n for n in inv.notes)
    assert f"{tmp_path}/davinci<N>: 2 Ascend NPU(s)" in inv.notes


def test_detect_mixed_host(empty_dev, recorded_run):
    run = recorded_run(nvidia_smi="nvidia-smi/1-gpu.csv", npu_smi="npu-smi/2x310p3.txt")
    inv = detect(_cfg(), run=run, dev_dir=empty_dev, nvml=None)
    assert [d.key for d in inv.devices] == [("ascend", 0), ("ascend", 1), ("nvidia", 0)]
    assert len(inv.of_kind("ascend")) == 2


def test_config_inventory_overrides_detection(empty_dev):
    def refuse(*_args, **_kwargs):
        raise AssertionError("no tool may run when accelerators.inventory is set")

    cfg = _cfg(
        inventory=[
            {"kind": "nvidia", "index": 1, "name": "Tesla T4", "memory_mib": 15360},
            {"kind": "ascend", "index": 0},
        ]
    )
    inv = detect(cfg, run=refuse, dev_dir=empty_dev, nvml=None)
    assert [(d.kind, d.index, d.source) for d in inv.devices] == [
        ("ascend", 0, "config"),
        ("nvidia", 1, "config"),
    ]
    assert inv.notes == ["config: 2 device(s) from accelerators.inventory (detection skipped)"]


def test_detect_off(empty_dev):
    def refuse(*_args, **_kwargs):
        raise AssertionError("detect: false must not run tools")

    inv = detect(_cfg(detect=False), run=refuse, dev_dir=empty_dev)
    assert inv.devices == [] and "accelerators.detect is false" in inv.notes[0]


class _Memory:
    total = 80 * 1024**3


class _NVML:
    """The few pynvml calls probe_nvml makes, answering like a 2-GPU host (bytes, as old pynvml)."""

    def __init__(self, fail: Exception | None = None):
        self.fail, self.shut = fail, False

    def nvmlInit(self):
        if self.fail:
            raise self.fail

    def nvmlShutdown(self):
        self.shut = True

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetUUID(self, handle):
        return f"GPU-0000000{handle}-aaaa-bbbb-cccc-dddddddddddd".encode()

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetMemoryInfo(self, handle):
        return _Memory()


def test_detect_prefers_nvml(empty_dev, recorded_run):
    nvml = _NVML()
    run = recorded_run(nvidia_smi=AssertionError("nvidia-smi must not run when NVML works"))
    inv = detect(_cfg(), run=run, dev_dir=empty_dev, nvml=nvml)
    assert [(d.index, d.name, d.memory_mib, d.source) for d in inv.devices] == [
        (0, "NVIDIA H100 80GB HBM3", 81920, "nvml"),
        (1, "NVIDIA H100 80GB HBM3", 81920, "nvml"),
    ]
    assert inv.devices[0].uuid.startswith("GPU-00000000") and nvml.shut
    assert "NVML: 2 NVIDIA GPU(s)" in inv.notes


def test_detect_falls_back_when_nvml_fails(empty_dev, recorded_run):
    nvml = _NVML(fail=RuntimeError("Driver Not Loaded"))
    inv = detect(
        _cfg(), run=recorded_run(nvidia_smi="nvidia-smi/1-gpu.csv"), dev_dir=empty_dev, nvml=nvml
    )
    assert [d.source for d in inv.devices] == ["nvidia-smi"]
    assert any("NVML: not usable (Driver Not Loaded)" in n for n in inv.notes)


def test_detect_default_nvml_import_is_guarded(empty_dev, recorded_run):
    """Whether or not nvidia-ml-py is installed here, detection answers (no GPU on CI)."""
    inv = detect(_cfg(), run=recorded_run(), dev_dir=empty_dev)
    assert inv.notes[0].startswith("NVML:")
