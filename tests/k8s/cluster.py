"""The real single-node Kubernetes cluster of scripts/k8s-cluster.sh, as the tests use it.

The cluster is one per machine (its kubelet owns /kubepods in the cgroup tree): `start()` starts
it or joins the one running, registered as a holder (this process's pid), and `Cluster.release()`
stops it only when no other holder (another pytest session, or an admin who started it by hand)
still uses it.

When the tests run (tests/k8s/conftest.py):
  MLW_TEST_K8S=1   always: build the binaries first if they are not cached (a cold build is long,
                   see README "Kubernetes tests")
  MLW_TEST_K8S=0   never
  unset            when the binaries are already built (`scripts/k8s-cluster.sh build`), else skip

    python -m tests.k8s.cluster     # start it (building what is missing) and print its settings
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "k8s-cluster.sh"
# the script's exit status when this machine cannot host the cluster (no Go, no module proxy,
# the kubelet cannot run): the tests skip with the script's reason instead of failing
CANNOT_RUN_HERE = 3


class ClusterUnavailable(RuntimeError):
    """The cluster cannot run here; str() is the reason a test prints when it skips."""


def _script(*args: str, env: dict | None = None, timeout: float = 600):
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def binaries_built() -> bool:
    """True when `scripts/k8s-cluster.sh build` has nothing left to do (checked by the script)."""
    result = _script("build", "--check", timeout=60)
    return result.returncode == 0


@dataclass
class Cluster:
    """A running cluster: where its API is, the admin's kubeconfig, its node, and helpers."""

    kubeconfig: Path
    api_url: str
    node: str
    node_ip: str
    pod_subnet: str
    containerd: str
    bin_dir: Path
    version: str
    holder: str = field(default_factory=lambda: str(os.getpid()))

    @property
    def env(self) -> dict[str, str]:
        """Environment for a process that should use this cluster (kubectl, KubeSpawner)."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result

    def get(self, kind: str, name: str = "", namespace: str | None = None) -> dict:
        args = ["get", kind, *([name] if name else []), "-o", "json"]
        if namespace:
            args += ["-n", namespace]
        return json.loads(self.kubectl(*args).stdout)

    def apply(self, manifest: dict | list, namespace: str | None = None) -> None:
        """kubectl apply of one object or a list of them (dicts, sent as JSON)."""
        items = manifest if isinstance(manifest, list) else [manifest]
        doc = {"apiVersion": "v1", "kind": "List", "items": items}
        args = ["apply", "-f", "-", *(["-n", namespace] if namespace else [])]
        self.kubectl(*args, input=json.dumps(doc))

    def load_image(self, tag: str) -> None:
        """Copy a podman image (e.g. tests/containers' test image) into the node's containerd."""
        result = _script("load-image", tag, timeout=900)
        if result.returncode != 0:
            raise ClusterUnavailable(f"loading {tag} failed: {result.stderr.strip()[-1500:]}")

    def create_namespace(self, prefix: str = "mlw-test") -> str:
        """A fresh namespace, once its default ServiceAccount exists (pods need it)."""
        name = f"{prefix}-{secrets.token_hex(3)}"
        self.kubectl("create", "namespace", name)
        deadline = time.monotonic() + 60
        while self.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode:
            if time.monotonic() > deadline:
                raise AssertionError(f"namespace {name}: no default ServiceAccount after 60 s")
            time.sleep(0.2)
        return name

    def delete_namespace(self, name: str, wait: bool = True) -> None:
        self.kubectl(
            "delete",
            "namespace",
            name,
            "--ignore-not-found",
            f"--wait={str(wait).lower()}",
            timeout=300,
        )

    @contextlib.contextmanager
    def namespace(self, prefix: str = "mlw-test"):
        """A fresh namespace for a test, deleted (with its pods) afterwards."""
        name = self.create_namespace(prefix)
        try:
            yield name
        finally:
            self.delete_namespace(name)

    def release(self) -> None:
        """This process no longer uses the cluster: stop it unless another holder does."""
        result = _script("stop", env={"MLW_K8S_HOLDER": self.holder}, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"scripts/k8s-cluster.sh stop failed: {result.stderr.strip()}")


def start(build: bool = True, holder: str | None = None) -> Cluster:
    """Start the cluster (or join the one running) and return it; ClusterUnavailable with the
    exact reason when this machine cannot run it."""
    if os.geteuid() != 0:
        raise ClusterUnavailable("the cluster needs root (a kubelet, containerd, cgroups)")
    holder = holder or str(os.getpid())
    env = {"MLW_K8S_HOLDER": holder}
    if not build:
        env["MLW_K8S_NO_BUILD"] = "1"
    result = _script("start", env=env, timeout=7200)
    if result.returncode == CANNOT_RUN_HERE:
        raise ClusterUnavailable(result.stderr.strip()[-3000:])
    if result.returncode != 0:
        raise RuntimeError(f"scripts/k8s-cluster.sh start failed:\n{result.stderr.strip()[-4000:]}")
    settings = dict(
        line.removeprefix("export ").split("=", 1)
        for line in _script("env").stdout.splitlines()
        if "=" in line
    )
    return Cluster(
        kubeconfig=Path(settings["KUBECONFIG"]),
        api_url=settings["MLW_K8S_API"],
        node=settings["MLW_K8S_NODE"],
        node_ip=settings["MLW_K8S_NODE_IP"],
        pod_subnet=settings["MLW_K8S_POD_SUBNET"],
        containerd=settings["MLW_K8S_CONTAINERD"],
        bin_dir=Path(settings["MLW_K8S_BIN"]),
        version=settings["MLW_K8S_VERSION"],
        holder=holder,
    )


if __name__ == "__main__":
    try:
        cluster = start(holder="manual")
    except ClusterUnavailable as exc:
        sys.exit(f"the cluster cannot run here: {exc}")
    print(f"export KUBECONFIG={cluster.kubeconfig}  # node {cluster.node}, API {cluster.api_url}")
