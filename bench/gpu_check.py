"""On a machine with real NVIDIA GPUs: does a server see exactly the GPU the allocator gave it?

    .venv/bin/python bench/gpu_check.py [--python /path/to/python-with-torch]

Detects GPUs with mlworkshop's inventory (NVML, else nvidia-smi), allocates one with the real
allocator on a temporary SQLite database, then starts a child Python with exactly `local_env()`
applied and asks torch what it sees. A CPU-only child (no allocation) must see no GPU. Prints a
table; exits 1 if a row is wrong. Not a timed test: nothing here runs in CI (no GPU there).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mlworkshop.accelerators.allocator import Allocator
from mlworkshop.accelerators.exposure import local_env
from mlworkshop.accelerators.inventory import detect
from mlworkshop.config.accelerators import AcceleratorsConfig

CHILD = (
    "import json, os, torch\n"
    "ok = torch.cuda.is_available()\n"
    "n = torch.cuda.device_count() if ok else 0\n"
    "props = torch.cuda.get_device_properties(0) if n else None\n"
    "print(json.dumps({'visible': os.environ.get('CUDA_VISIBLE_DEVICES'), 'available': ok, 'count': n,\n"
    "  'name': props.name if props else None,\n"
    "  'uuid': str(getattr(props, 'uuid', '')) if props else None}))\n"
)


def run_child(python: str, extra_env: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUDA_", "NVIDIA_"))}
    env.update(extra_env)
    done = subprocess.run(
        [python, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--python", default=sys.executable, help="a Python that has torch (CUDA build)"
    )
    args = parser.parse_args()

    console = Console()
    inventory = detect(AcceleratorsConfig(mode="exclusive"))
    for note in inventory.notes:
        console.print(f"how: {note}", highlight=False)
    gpus = inventory.of_kind("nvidia")
    if not gpus:
        console.print("No NVIDIA GPU found: nothing to check.")
        return 0

    table = Table(
        "case",
        "allocated",
        "CUDA_VISIBLE_DEVICES",
        "torch sees",
        "name",
        "uuid match",
        "ok",
        title="GPU exposure check",
    )
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        allocator = Allocator(f"sqlite:///{Path(tmp) / 'hub.sqlite'}", inventory.devices)
        try:
            cases = [("cpu-only", [])]
            for gpu in gpus:  # each GPU in turn: the index we store must be the GPU CUDA opens
                cases.append((f"gpu {gpu.index}", [gpu]))
            for case, wanted in cases:
                server = case.replace(" ", "-")
                devices = []
                if wanted:
                    allocator.allocate("bench", server, "nvidia", 1)
                    devices = allocator.held_by("bench", server)
                env = local_env(devices, inventory.devices)
                seen = run_child(args.python, env)
                if "error" in seen:
                    ok = False
                    table.add_row(
                        case,
                        ",".join(str(d.index) for d in devices) or "-",
                        env.get("CUDA_VISIBLE_DEVICES", ""),
                        "error",
                        " ".join(seen["error"]),
                        "",
                        "no",
                    )
                else:
                    expect = len(devices)
                    uuid_match = ""
                    if devices and seen.get("uuid"):
                        uuid_match = (
                            "yes"
                            if (devices[0].uuid or "").removeprefix("GPU-")
                            == seen["uuid"].removeprefix("GPU-")
                            else "NO"
                        )
                    ok = seen["count"] == expect and uuid_match != "NO"
                    table.add_row(
                        case,
                        ",".join(str(d.index) for d in devices) or "-",
                        repr(seen["visible"]),
                        f"{seen['count']} (available={seen['available']})",
                        seen.get("name") or "",
                        uuid_match,
                        "yes" if ok else "NO",
                    )
                failures += not ok
                allocator.release("bench", server)
        finally:
            allocator.close()
    console.print(table)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
