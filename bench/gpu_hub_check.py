"""On a machine with real NVIDIA GPUs: the whole path, through a real hub.

    .venv/bin/python bench/gpu_hub_check.py          (as root; needs torch in the venv)

Starts an mlworkshop hub (local backend, `accelerators.mode: exclusive`, devices detected with
NVML / nvidia-smi), creates up to two students, spawns a "1 × GPU" server for each through the
hub's API, and asks torch from a kernel inside each server what it sees: is_available(),
device_count(), the device name and which CUDA_VISIBLE_DEVICES it was given. Each server must
see exactly one GPU, and two servers never the same one. Prints a table; exits 1 otherwise.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from tests.integration.hubctl import Hub, Server, make_site_dir, mlw, remove_site  # noqa: E402

PASSWORD = "Gpu-check-pass-1"
CHILD = (
    "import json, os, torch\n"
    "ok = torch.cuda.is_available()\n"
    "n = torch.cuda.device_count() if ok else 0\n"
    "print(json.dumps({'visible': os.environ.get('CUDA_VISIBLE_DEVICES'), 'available': ok, 'count': n,\n"
    "  'name': torch.cuda.get_device_name(0) if n else None, 'uid': os.getuid()}))\n"
)


async def main() -> int:
    hub = Hub(make_site_dir())
    hub.configure(
        **{
            "accelerators.mode": "exclusive",
            "accelerators.max_per_user": 1,
            "spawner.local.user_prefix": "gc-",
            "spawner.local.admin_group": "gc-adm",
        }
    )
    found = mlw(hub.site, "accelerators")
    print(found.stdout)
    students = ["gpu1", "gpu2"]
    for name in students:
        mlw(hub.site, "user", "add", name, "--password-stdin", input=PASSWORD + "\n")
    rows, ok = [], True
    hub.start()
    try:
        for name in students:
            browser = hub.browser()
            browser.login(name, PASSWORD)
            response = browser.api("POST", f"/users/{name}/server", json={"profile": "gpu-1"})
            if response.status_code not in (201, 202):
                rows.append(
                    (
                        name,
                        "refused",
                        response.json().get("message", response.text)[:100],
                        "",
                        "",
                        "",
                    )
                )
                continue
            browser.wait_ready(name, timeout=180)
            server = Server(hub.url, name, browser.new_token(name))
            seen = json.loads((await server.run_code(CHILD, timeout=180)).strip().splitlines()[-1])
            rows.append(
                (
                    name,
                    "running",
                    str(seen["visible"]),
                    str(seen["available"]),
                    str(seen["count"]),
                    str(seen["name"]),
                )
            )
            ok &= seen["available"] and seen["count"] == 1 and seen["uid"] != 0
        visible = [r[2] for r in rows if r[1] == "running"]
        ok &= len(visible) == len(set(visible)) and len(visible) >= 1
    finally:
        hub.stop()
        for name in students:
            subprocess.run(["pkill", "-KILL", "-u", f"gc-{name}"], capture_output=True)
            subprocess.run(["userdel", f"gc-{name}"], capture_output=True)
        subprocess.run(["groupdel", "gc-adm"], capture_output=True)
        remove_site(hub.site)
    table = Table(
        "student",
        "server",
        "CUDA_VISIBLE_DEVICES",
        "cuda.is_available()",
        "device_count()",
        "device",
    )
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    print("OK" if ok else "FAILED: a server did not see exactly its own GPU")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
