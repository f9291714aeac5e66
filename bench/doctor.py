"""The doctor on a running root hub: how long one `mlworkshop doctor` takes, how long a scrape of
/hub/metrics (JupyterHub's and ours) takes, and /hub/health while `doctor --fix` runs in a loop.

    .venv/bin/python bench/doctor.py              (as root; one real hub, 5 students with servers)

Prints a table. Not a timed test.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.conftest import _remove_accounts  # noqa: E402
from tests.integration.hubctl import MLW, Hub, make_site_dir, mlw, remove_site  # noqa: E402

STUDENTS = 5


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return f"{statistics.median(values) * 1000:.1f} / {p99 * 1000:.1f} / {values[-1] * 1000:.1f}"


def _probe(url: str, seconds: float, headers: dict | None = None) -> list[float]:
    times = []
    with httpx.Client(timeout=30, headers=headers or {}) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            t = time.perf_counter()
            assert client.get(url).status_code == 200
            times.append(time.perf_counter() - t)
            time.sleep(0.02)
    return times


def main() -> None:
    hub = Hub(make_site_dir())
    hub.prefix, hub.admin_group = "bd-", "bd-adm"
    hub.configure(
        **{
            "spawner.local.user_prefix": hub.prefix,
            "spawner.local.admin_group": hub.admin_group,
            "doctor.watch_every": 0,
        }
    )
    rows = []
    try:
        hub.start()
        for i in range(STUDENTS):
            name = f"s{i}"
            mlw(hub.site, "user", "add", name, "--password-stdin", input="Bench-Pass-42x\n")
            browser = hub.browser()
            browser.login(name, "Bench-Pass-42x")
            browser.start_server(name)
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            subprocess.run([*MLW, "doctor", "--json", "--site", str(hub.site)], capture_output=True)
            runs.append(time.perf_counter() - t)
        rows.append(("mlworkshop doctor --json (whole command, 5 runs)", _ms(runs)))
        token = (hub.site / "secrets" / "cli_api_token").read_text().strip()
        auth = {"Authorization": f"token {token}"}
        rows.append(("/hub/metrics scrape, 10 s", _ms(_probe(hub.url + "/hub/metrics", 10, auth))))
        rows.append(("/hub/health idle, 10 s", _ms(_probe(hub.url + "/hub/health", 10))))
        stop = threading.Event()

        def loop():
            while not stop.is_set():
                subprocess.run(
                    [*MLW, "doctor", "--fix", "--json", "--site", str(hub.site)],
                    capture_output=True,
                )

        worker = threading.Thread(target=loop)
        worker.start()
        try:
            busy = _probe(hub.url + "/hub/health", 15)
        finally:
            stop.set()
            worker.join()
        rows.append(("/hub/health while doctor --fix runs in a loop, 15 s", _ms(busy)))
    finally:
        hub.stop()
        _remove_accounts(hub.prefix, hub.admin_group)
        remove_site(hub.site)
    table = Table("what", "p50 / p99 / max (ms)")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
