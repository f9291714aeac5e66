"""Fixtures for tests on a real single-node Kubernetes cluster (scripts/k8s-cluster.sh; see
tests/k8s/cluster.py for when they run and how the cluster is shared).

    k8s_cluster     session: the running cluster (kubeconfig, API URL, node, kubectl, namespaces,
                    load_image); stopped after the session unless someone else still uses it
    k8s_namespace   a fresh namespace for one test, deleted with its pods afterwards
    k8s_test_image  tests/containers' singleuser test image, loaded into the node's containerd

Everything here skips with the exact reason when the cluster cannot run on this machine.
"""

from __future__ import annotations

import os

import pytest

from .cluster import Cluster, ClusterUnavailable, binaries_built, start

# a cold build runs inside the first test's setup: give it the time it needs (README)
COLD_BUILD_TIMEOUT = 3 * 3600


def _mode() -> str:
    return os.environ.get("MLW_TEST_K8S", "")


def pytest_collection_modifyitems(config, items):
    mine = [item for item in items if "tests/k8s/" in str(item.fspath)]
    if not mine or _mode() != "1" or os.geteuid() != 0 or binaries_built():
        return
    for item in mine:
        item.add_marker(pytest.mark.timeout(COLD_BUILD_TIMEOUT))


@pytest.fixture(scope="session")
def k8s_cluster() -> Cluster:
    mode = _mode()
    if mode != "1":  # the suite with them runs past CI's 90 minutes on 2 cores (README)
        pytest.skip("opt-in: MLW_TEST_K8S=1 make test runs the Kubernetes cluster tests")
    try:
        cluster = start(build=mode == "1")
    except ClusterUnavailable as exc:
        hint = "" if mode == "1" else " (MLW_TEST_K8S=1 builds what is missing)"
        pytest.skip(f"the Kubernetes test cluster cannot run here{hint}: {exc}")
    yield cluster
    cluster.release()


@pytest.fixture
def k8s_namespace(k8s_cluster):
    with k8s_cluster.namespace() as name:
        yield name


@pytest.fixture(scope="session")
def k8s_test_image(k8s_cluster) -> str:
    from tests.containers.images import EngineUnavailable, engine_url, ensure_test_image

    try:
        engine_url()
        tag = ensure_test_image(lambda message: print(message))
    except EngineUnavailable as exc:
        pytest.skip(f"no test image (podman builds it): {exc}")
    try:
        k8s_cluster.load_image(tag)
    except ClusterUnavailable as exc:
        pytest.fail(str(exc))
    return tag
