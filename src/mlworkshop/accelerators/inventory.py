"""What accelerators this host has, and how we know.

Order of evidence: the config's `accelerators.inventory` (when set, nothing is probed), then for
NVIDIA the NVML library (`nvidia-ml-py`, if installed) and else `nvidia-smi`, and for Ascend
`npu-smi info` and else the `/dev/davinci<N>` device files. Every step leaves a human-readable note
so `mlworkshop accelerators` can say why a device is (or is not) there.

Parsers are pure functions of the tool's text, so they are tested on recorded output.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NVIDIA_SMI_QUERY = [
    "nvidia-smi",
    "--query-gpu=index,uuid,name,memory.total",
    "--format=csv,noheader",
]
NPU_SMI_INFO = ["npu-smi", "info"]
TOOL_TIMEOUT = 20  # seconds; a wedged driver must not hang the hub's start

KIND_LABEL = {"nvidia": "GPU", "ascend": "NPU"}


@dataclass(frozen=True, order=True)
class Device:
    kind: str  # "nvidia" | "ascend"
    index: int  # nvidia-smi/NVML index; for Ascend the logic device id (= N of /dev/davinciN)
    uuid: str | None = field(default=None, compare=False)
    name: str | None = field(default=None, compare=False)
    memory_mib: int | None = field(default=None, compare=False)
    source: str = field(
        default="config", compare=False
    )  # config | nvml | nvidia-smi | npu-smi | dev

    @property
    def label(self) -> str:
        """'GPU 0' / 'NPU 3': what users read in messages."""
        return f"{KIND_LABEL.get(self.kind, self.kind)} {self.index}"

    @property
    def key(self) -> tuple[str, int]:
        return (self.kind, self.index)


@dataclass
class Inventory:
    devices: list[Device]
    notes: list[str]  # how each device was found, or why a probe found nothing

    def of_kind(self, kind: str) -> list[Device]:
        return [d for d in self.devices if d.kind == kind]

    @property
    def kinds(self) -> list[str]:
        return sorted({d.kind for d in self.devices})


class ToolError(Exception):
    """A vendor tool ran but did not give a device list; str() is its own explanation."""


# --- parsers ----------------------------------------------------------------------------
_MIB_RE = re.compile(r"^\s*(\d+)\s*(MiB)?\s*$")


def parse_nvidia_smi_csv(text: str) -> list[Device]:
    """Rows of `index, uuid, name, memory.total` (nvidia-smi --format=csv,noheader[,nounits]).

    The name sits in the middle and may itself hold a comma, so index/uuid are taken from the left
    and memory from the right. "No devices were found" is 0 devices; anything else unparseable is
    a ToolError carrying the tool's own words (e.g. the driver is not loaded).
    """
    devices: list[Device] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.lower().startswith("no devices were found"):
            return []
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4 or not parts[0].isdigit():
            raise ToolError(text.strip())
        index, uuid, memory = parts[0], parts[1], parts[-1]
        name = ", ".join(parts[2:-1])
        match = _MIB_RE.match(memory)
        devices.append(
            Device(
                kind="nvidia",
                index=int(index),
                uuid=uuid if uuid.startswith(("GPU-", "MIG-")) else None,
                name=name or None,
                memory_mib=int(match.group(1)) if match else None,
                source="nvidia-smi",
            )
        )
    return sorted(devices)


_BUS_ID_RE = re.compile(r"^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$")
_PAIR_RE = re.compile(r"(\d+)\s*/\s*(\d+)")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_npu_smi_info(text: str) -> list[Device]:
    """The device table of `npu-smi info`.

    Each chip takes two rows:  `| NPU  Name | Health | Power Temp Hugepages |` then
    `| Chip [Device] | Bus-Id | AICore Memory-Usage [HBM-Usage] |`. 910-class boards print no
    Device column (one chip per NPU: the NPU id is the device number); 310P boards print the
    logic Device id, which is what ASCEND_RT_VISIBLE_DEVICES and /dev/davinci<N> count. Memory is
    the last "used / total" pair (HBM when there is HBM). The process table after the device
    table is ignored. Output without a device table is a ToolError with the tool's words.
    """
    lines = text.splitlines()
    devices: list[Device] = []
    saw_header = False
    for number, line in enumerate(lines):
        if "Process id" in line or "Process name" in line:
            break
        if not line.lstrip().startswith("|"):
            continue
        cells = _cells(line)
        if cells and cells[0].startswith("NPU") and "Name" in cells[0]:
            saw_header = True
            continue
        if len(cells) < 3 or number + 1 >= len(lines):
            continue
        first = cells[0].split()
        below = _cells(lines[number + 1])
        if (
            len(first) < 2
            or not first[0].isdigit()
            or len(below) < 3
            or not _BUS_ID_RE.match(below[1])
        ):
            continue
        npu_id, chip_name = int(first[0]), first[1]
        chip = below[0].split()
        device_no = int(chip[1]) if len(chip) >= 2 and chip[1].isdigit() else npu_id
        pairs = _PAIR_RE.findall(below[2])
        memory = int(pairs[-1][1]) if pairs else None
        devices.append(
            Device(
                kind="ascend",
                index=device_no,
                uuid=None,
                name=chip_name,
                memory_mib=memory,
                source="npu-smi",
            )
        )
    if not devices and not saw_header:
        raise ToolError(text.strip() or "npu-smi printed nothing")
    return sorted(devices)


def parse_davinci_files(names: Sequence[str]) -> list[Device]:
    """`davinci0`, `davinci7` -> NPUs 0 and 7; `davinci_manager` and friends are not devices."""
    found = []
    for name in names:
        match = re.fullmatch(r"davinci(\d+)", name)
        if match:
            found.append(Device(kind="ascend", index=int(match.group(1)), source="dev"))
    return sorted(found)


def chip_family(device: Device) -> str:
    """Ascend chip family for the Kubernetes device plugin: Ascend910, Ascend310P, Ascend310."""
    name = (device.name or "").upper().removeprefix("ASCEND").strip()
    if name.startswith("310P"):
        return "Ascend310P"
    if name.startswith("310"):
        return "Ascend310"
    return "Ascend910"  # 910, 910B*, 910_93 and unknown chips (the training servers we target)


# --- probes -----------------------------------------------------------------------------
Runner = Callable[..., Any]  # subprocess.run's shape: run(argv, capture_output=, text=, timeout=)


def _run_tool(run: Runner, argv: list[str]) -> str:
    try:
        done = run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    except FileNotFoundError:
        raise ToolError(f"{argv[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"{argv[0]} did not answer within {TOOL_TIMEOUT} s") from None
    except OSError as exc:
        raise ToolError(f"{argv[0]} could not run: {exc}") from None
    out = (done.stdout or "") + ("\n" + done.stderr if done.stderr and not done.stdout else "")
    if done.returncode != 0:
        words = " ".join(out.split()) or "no output"
        if "no devices were found" in words.lower():
            return ""
        raise ToolError(f"{argv[0]} failed (exit {done.returncode}): {words}")
    return done.stdout or ""


def _import_nvml() -> Any | None:
    try:
        import pynvml  # from the nvidia-ml-py package; optional
    except ImportError:
        return None
    return pynvml


def probe_nvml(nvml: Any) -> list[Device]:
    """Devices through NVML, the driver's own library (nvidia-smi is a front end to it)."""
    nvml.nvmlInit()
    try:
        found = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            uuid, name = nvml.nvmlDeviceGetUUID(handle), nvml.nvmlDeviceGetName(handle)
            uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
            name = name.decode() if isinstance(name, bytes) else name
            total = nvml.nvmlDeviceGetMemoryInfo(handle).total
            found.append(Device("nvidia", index, uuid, name, int(total) // (1024 * 1024), "nvml"))
        return found
    finally:
        nvml.nvmlShutdown()


def _detect_nvidia(run: Runner, nvml: Any) -> tuple[list[Device], list[str]]:
    notes: list[str] = []
    if nvml is not None:
        try:
            found = probe_nvml(nvml)
            notes.append(f"NVML: {len(found)} NVIDIA GPU(s)")
            return found, notes
        except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...
            notes.append(f"NVML: not usable ({exc or type(exc).__name__}); trying nvidia-smi")
    else:
        notes.append("NVML: nvidia-ml-py is not installed; trying nvidia-smi")
    try:
        found = parse_nvidia_smi_csv(_run_tool(run, NVIDIA_SMI_QUERY))
    except ToolError as exc:
        notes.append(f"nvidia-smi: {exc}")
        return [], notes
    notes.append(f"nvidia-smi: {len(found)} NVIDIA GPU(s)")
    return found, notes


def _detect_ascend(run: Runner, dev_dir: Path) -> tuple[list[Device], list[str]]:
    notes: list[str] = []
    try:
        found = parse_npu_smi_info(_run_tool(run, NPU_SMI_INFO))
        notes.append(f"npu-smi: {len(found)} Ascend NPU(s)")
        return found, notes
    except ToolError as exc:
        notes.append(f"npu-smi: {' '.join(str(exc).split())}")
    try:
        names = [p.name for p in dev_dir.iterdir()]
    except OSError as exc:
        notes.append(f"{dev_dir}: cannot list ({exc.strerror})")
        return [], notes
    found = parse_davinci_files(names)
    where = f"{dev_dir}/davinci<N>"
    notes.append(f"{where}: {len(found)} Ascend NPU(s)" if found else f"{where}: none")
    return found, notes


_AUTO = object()


def detect(
    cfg: Any, run: Runner = subprocess.run, dev_dir: Path = Path("/dev"), nvml: Any = _AUTO
) -> Inventory:
    """The host's devices. `cfg` is the AcceleratorsConfig; `run`, `dev_dir` and `nvml` are seams
    for recorded output (nvml=None: behave as if nvidia-ml-py were not installed)."""
    if cfg.inventory:
        devices = [
            Device(d.kind, d.index, d.uuid, d.name, d.memory_mib, "config") for d in cfg.inventory
        ]
        return Inventory(
            sorted(devices),
            [f"config: {len(devices)} device(s) from accelerators.inventory (detection skipped)"],
        )
    if not cfg.detect:
        return Inventory(
            [], ["config: accelerators.detect is false and accelerators.inventory is empty"]
        )
    nvidia, nvidia_notes = _detect_nvidia(run, _import_nvml() if nvml is _AUTO else nvml)
    ascend, ascend_notes = _detect_ascend(run, dev_dir)
    return Inventory(sorted(nvidia + ascend), nvidia_notes + ascend_notes)
