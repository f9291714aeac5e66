"""Spawn time on the kubernetes backend beside the local and container (podman) backends.

    .venv/bin/python bench/k8s_spawn.py [--runs 10] [--rush 10] [--backends local docker kubernetes]

For each backend a real root hub is started (tests/integration/hubctl.py) with the same users, and
the time measured is the student's: POST /hub/api/users/<name>/server until their JupyterLab
answers /user/<name>/api/status through the proxy, with the image already on the node.
  one at a time: `--runs` starts of one student, each server stopped before the next (p50, p90)
  at once:       `--rush` students POST together (p50 and the last one)
The kubernetes backend uses the test cluster (scripts/k8s-cluster.sh start; tests/k8s/cluster.py)
and the singleuser test image, with pods requesting 5 % of their limits (the test node has 2 CPUs;
at the default half, two pods fit and the rest stay Pending: "Insufficient cpu"); docker uses podman's socket and the same image (tests/containers).
A backend whose engine is not here is reported as skipped, with the reason. Root only.
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.integration.conftest import _remove_accounts  # noqa: E402
from tests.integration.hubctl import Hub, make_site_dir, mlw, remove_site  # noqa: E402

PASSWORD = "Bench-k8s-spawn-1"
REQUEST_FRACTION = 0.05


def settings_for(backend: str, hub: Hub) -> dict[str, object]:
    """The hub's config for one backend; raises RuntimeError with the reason it cannot run."""
    if backend == "local":
        return {}
    from tests.containers.images import EngineUnavailable, engine_url, ensure_test_image

    try:
        url = engine_url()
        image = ensure_test_image(lambda m: print(m, file=sys.stderr))
    except EngineUnavailable as exc:
        raise RuntimeError(f"no podman to build the test image: {exc}") from None
    if backend == "docker":
        return {
            "spawner.backend": "docker",
            "spawner.docker.url": url,
            "spawner.docker.images": f"[{{name: default, image: '{image}'}}]",
            "spawner.docker.pull_policy": "never",
            "spawner.docker.name_template": f"mlwbench-{hub.prefix}{{username}}",
        }
    from tests.k8s.cluster import ClusterUnavailable, start

    try:
        cluster = start(build=False, holder="bench")
    except ClusterUnavailable as exc:
        raise RuntimeError(f"the test cluster cannot run here: {exc}") from None
    cluster.load_image(image)
    hub.cleanups.append(cluster.release)  # cleanups run last first: the namespace goes before
    namespace = cluster.create_namespace("mlw-bench")
    hub.cleanups.append(lambda: cluster.delete_namespace(namespace))
    host = ipaddress.ip_network(cluster.pod_subnet, strict=False)[1]
    return {
        "spawner.backend": "kubernetes",
        "spawner.kubernetes.kubeconfig": str(cluster.kubeconfig),
        "spawner.kubernetes.namespace": namespace,
        "spawner.kubernetes.hub_connect_url": f"http://{host}:{hub.internal_port}",
        "spawner.kubernetes.image": image,
        "spawner.kubernetes.image_pull_policy": "Never",
        # the test node has 2 CPUs: at the default (half of the profile's 2-CPU limit requested)
        # the scheduler fits two students' pods and the rest wait for room (Insufficient cpu)
        "spawner.kubernetes.request_fraction": REQUEST_FRACTION,
    }


class Student:
    def __init__(self, hub: Hub, name: str):
        self.name = name
        self.browser = hub.browser()
        assert self.browser.login(name, PASSWORD).status_code == 302
        self.token = self.browser.new_token(name)
        self.lab = httpx.Client(
            base_url=hub.url, headers={"Authorization": f"token {self.token}"}, timeout=10
        )

    def spawn(self, deadline_s: float = 300) -> float:
        """Seconds from the POST until JupyterLab answers through the proxy."""
        t0 = time.monotonic()
        response = self.browser.api("POST", f"/users/{self.name}/server")
        assert response.status_code in (201, 202), response.text
        while time.monotonic() - t0 < deadline_s:
            try:
                if self.lab.get(f"/user/{self.name}/api/status").status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{self.name}'s server did not answer within {deadline_s} s")

    def stop(self) -> None:
        self.browser.stop_server(self.name, timeout=180)


def measure(backend: str, runs: int, rush: int) -> dict:
    hub = Hub(make_site_dir())
    hub.prefix, hub.admin_group = "kb" + secrets.token_hex(2) + "-", "kbadm" + secrets.token_hex(2)
    hub.cleanups = []
    try:
        try:
            extra = settings_for(backend, hub)
        except RuntimeError as exc:
            return {"backend": backend, "skipped": str(exc)}
        hub.configure(
            **{
                "spawner.local.user_prefix": hub.prefix,
                "spawner.local.admin_group": hub.admin_group,
                "culler.enabled": "false",
                **extra,
            }
        )
        names = [f"s{i:02d}" for i in range(max(rush, 1))]
        for name in names:
            mlw(hub.site, "user", "add", name, "--password-stdin", input=PASSWORD + "\n")
        hub.start()
        students = [Student(hub, n) for n in names]
        one = []
        for _ in range(runs):
            one.append(students[0].spawn())
            students[0].stop()
        together: list[float] = [0.0] * rush
        errors: list[str] = []

        def go(i: int) -> None:
            try:
                together[i] = students[i].spawn()
            except Exception as exc:  # noqa: BLE001 - reported in the table
                errors.append(f"{students[i].name}: {exc}")

        threads = [threading.Thread(target=go, args=(i,)) for i in range(rush)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for s in students[:rush]:
            try:
                s.stop()
            except AssertionError:
                pass
        return {
            "backend": backend,
            "p50": statistics.median(one) if one else None,
            "p90": sorted(one)[int(0.9 * (len(one) - 1))] if one else None,
            "rush_p50": statistics.median(together) if rush and not errors else None,
            "rush_max": max(together) if rush and not errors else None,
            "errors": errors,
        }
    finally:
        try:
            hub.stop(timeout=120)
        finally:
            for cleanup in reversed(hub.cleanups):
                try:
                    cleanup()
                except Exception as exc:  # noqa: BLE001
                    print(f"cleanup: {exc}", file=sys.stderr)
            _remove_accounts(hub.prefix, hub.admin_group)
            remove_site(hub.site)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--rush", type=int, default=10)
    parser.add_argument(
        "--backends", nargs="+", default=["local", "docker", "kubernetes"], metavar="BACKEND"
    )
    args = parser.parse_args()
    rows = [measure(b, args.runs, args.rush) for b in args.backends]

    def s(v):
        return "-" if v is None else f"{v:.2f}"

    print(f"\nspawn: POST -> JupyterLab answers through the proxy, seconds ({args.runs} runs)")
    print(f"{'backend':<12}{'p50':>8}{'p90':>8}{f'{args.rush} at once p50':>20}{'last':>8}")
    for r in rows:
        if "skipped" in r:
            print(f"{r['backend']:<12}skipped: {r['skipped']}")
            continue
        print(
            f"{r['backend']:<12}{s(r['p50']):>8}{s(r['p90']):>8}{s(r['rush_p50']):>20}"
            f"{s(r['rush_max']):>8}"
        )
        for e in r["errors"]:
            print(f"    error: {e}")


if __name__ == "__main__":
    main()
