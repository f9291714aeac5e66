"""`mlworkshop k8s values` as an admin types it: the values file it prints (mlworkshop.yaml and the
extraConfig as readable blocks) validates merged over the chart's defaults against the chart's
schema; a site the chart cannot run is refused with the keys to change, never a traceback.
The commands that talk to a cluster run on the real one in tests/k8s/."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from mlworkshop.ops.k8s_values import merged

from .clirun import mlw

Z2JH = Path(__file__).resolve().parents[2].parent / "shared" / "z2jh"


@pytest.mark.skipif(not (Z2JH / "values.schema.yaml").exists(), reason=f"no chart data at {Z2JH}")
def test_values_from_the_cli_validate(tmp_path):
    site = tmp_path / "site"
    assert mlw(site, "init").returncode == 0
    for key, value in {
        "spawner.backend": "kubernetes",
        "spawner.kubernetes.storage": "pvc",
        "spawner.kubernetes.shared": "{type: nfs, nfs_server: 10.1.0.5, nfs_path: /srv/course}",
        "culler.timeout": "1800",
    }.items():
        run = mlw(site, "config", "set", key, value)
        assert run.returncode == 0, run
    run = mlw(site, "k8s", "values")
    assert run.returncode == 0, run
    assert "stringData: |" in run.stdout and "configure_in_chart(c)" in run.stdout
    yaml = YAML(typ="safe", pure=True)
    values = yaml.load(run.stdout)
    carried = yaml.load(values["hub"]["extraFiles"]["mlworkshop-yaml"]["stringData"])
    assert carried["spawner"]["kubernetes"]["shared"]["nfs_server"] == "10.1.0.5"
    assert values["cull"]["timeout"] == 1800
    schema = yaml.load((Z2JH / "values.schema.yaml").read_text())
    defaults = yaml.load((Z2JH / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(merged(defaults, values))


def test_values_refuse_host_path_storage(tmp_path):
    site = tmp_path / "site"
    assert mlw(site, "init").returncode == 0
    assert mlw(site, "config", "set", "spawner.backend", "kubernetes").returncode == 0
    run = mlw(site, "k8s", "values")
    assert run.returncode == 2, run
    assert "spawner.kubernetes.storage to pvc" in run.stderr and "Traceback" not in run.output


# `k8s rbac`: the chart's hub gets only reads beyond its Role (applied to the real cluster, with
# the doctor as that hub, in tests/k8s/test_hub_role.py)
@pytest.mark.parametrize("stats", [False, True])
def test_rbac_without_kubelet_stats_leaves_nodes_proxy_out(tmp_path, stats):
    site = tmp_path / "site"
    assert mlw(site, "init").returncode == 0
    assert mlw(site, "config", "set", "spawner.kubernetes.namespace", "lab").returncode == 0
    printed = mlw(site, "k8s", "rbac", *(["--kubelet-stats"] if stats else []))
    assert printed.returncode == 0, printed
    role, binding = YAML(typ="safe", pure=True).load(printed.stdout)["items"]
    resources = [r for rule in role["rules"] for r in rule["resources"]]
    assert ("nodes/proxy" in resources) is stats
    assert all(set(rule["verbs"]) <= {"get", "list", "watch"} for rule in role["rules"])
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hub", "namespace": "lab"}]
    assert binding["roleRef"]["name"] == role["metadata"]["name"] == "mlworkshop-hub-lab"


def test_rbac_refuses_a_service_account_name_kubernetes_would(tmp_path):
    site = tmp_path / "site"
    assert mlw(site, "init").returncode == 0
    run = mlw(site, "k8s", "rbac", "--service-account", "Bad Name")
    assert run.returncode == 2, run
    assert "--service-account" in run.stderr and "Bad Name" in run.stderr, run
    assert "Traceback" not in run.output and "kind: ClusterRole" not in run.stdout
