"""How long one student's container takes to start on podman, through a real hub.

    .venv/bin/python bench/container_spawn.py [--runs 5] [--network bridge|host]

Builds (once) the test image of tests/containers, starts a real mlworkshop hub with
`spawner.backend: docker` on podman's Docker-compatible socket, then for each run: the student's
server is requested through the REST API and timed until the hub reports it ready, then it is
stopped (the container is removed) so the next run is a fresh container. Prints a table. Root
(the hub makes system accounts and runs each container as the student's uid).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.containers.images import engine_url, ensure_test_image  # noqa: E402
from tests.integration.conftest import _remove_accounts  # noqa: E402
from tests.integration.hubctl import Hub, make_site_dir, mlw, remove_site  # noqa: E402

PASSWORD = "Bench-container-1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--network", default="bridge", help="spawner.docker.network (bridge, host)")
    parser.add_argument(
        "--stock-wait",
        action="store_true",
        help="leave finding the ready server to JupyterHub's back-off (DockerSpawner's own behaviour)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="print the hub's log lines of each start"
    )
    args = parser.parse_args()

    url = engine_url()
    image = ensure_test_image(lambda m: print(m, file=sys.stderr))
    tag = "b" + secrets.token_hex(2)
    hub = Hub(make_site_dir())
    try:
        hub.configure(
            **{
                "spawner.local.user_prefix": f"{tag}-",
                "spawner.local.admin_group": f"{tag}-adm",
                "spawner.backend": "docker",
                "spawner.docker.url": url,
                "spawner.docker.images": f"[{{name: default, image: '{image}'}}]",
                "spawner.docker.pull_policy": "never",
                "spawner.docker.network": args.network,
                "spawner.docker.name_template": f"mlwbench-{tag}-{{username}}",
                "spawner.docker.mem_limit": "1G",
                "culler.enabled": "false",
                **(
                    {"spawner.docker.extra": "{wait_until_ready: false}"} if args.stock_wait else {}
                ),
            }
        )
        mlw(hub.site, "user", "add", "student", "--password-stdin", input=PASSWORD + "\n")
        hub.start()
        browser = hub.browser()
        assert browser.login("student", PASSWORD).status_code == 302
        times = []
        for run in range(args.runs):
            started = time.monotonic()
            response = browser.api("POST", "/users/student/server")
            assert response.status_code in (201, 202), response.text
            browser.wait_ready("student", timeout=180)
            elapsed = time.monotonic() - started
            lab = browser.client.get("/user/student/lab")  # through the proxy, with the OAuth dance
            assert lab.status_code == 200 and "JupyterLab" in lab.text, lab.status_code
            times.append(elapsed)
            print(f"run {run + 1}: ready in {elapsed:.2f} s", file=sys.stderr)
            browser.stop_server("student")
        engine = "podman" if "podman" in url else "docker"
        print()
        wait = "JupyterHub back-off" if args.stock_wait else "spawner waits for HTTP"
        print("| engine | network | ready detection | runs | min (s) | median (s) | max (s) |")
        print("|---|---|---|---|---|---|---|")
        print(
            f"| {engine} ({url}) | {args.network} | {wait} | {len(times)} | {min(times):.2f} | "
            f"{statistics.median(times):.2f} | {max(times):.2f} |"
        )
        print(
            f"\nimage {image}; time = POST /hub/api/users/student/server until the hub reports the "
            "server ready (container created, JupyterLab answering through the proxy); "
            f"{os.cpu_count()} CPUs"
        )
        if args.verbose:
            import re

            for line in hub.log().splitlines():
                if re.search(
                    r"Creating oauth client|Created container|Starting container|took .* seconds to start",
                    line,
                ):
                    print(line)
    finally:
        hub.stop()
        import docker

        client = docker.APIClient(base_url=url, version="auto")
        for c in client.containers(all=True, filters={"label": f"org.mlworkshop.site={hub.site}"}):
            client.remove_container(c["Id"], force=True)
        if os.geteuid() == 0:
            _remove_accounts(f"{tag}-", f"{tag}-adm")
        remove_site(hub.site)


if __name__ == "__main__":
    main()
