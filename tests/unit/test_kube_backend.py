"""The kubernetes backend's pure parts: spawner.kubernetes validation, the traitlets it sets and
the pieces of a user's pod (hub/k8s_objects.py), without a cluster. The real-cluster tests are in
tests/k8s/."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from traitlets.config import Config

from mlworkshop.config import MLWorkshopConfig
from mlworkshop.config.kubernetes import KubernetesBackendConfig
from mlworkshop.hub import k8s_objects
from mlworkshop.hub.configure import apply_spawner
from mlworkshop.site import Site
from mlworkshop.usage.k8s_stats import pod_reading

SITE = Site(Path("/srv/test-site"))


def kcfg(**section) -> KubernetesBackendConfig:
    return KubernetesBackendConfig.model_validate(section)


def test_defaults_are_valid_and_described():
    k = KubernetesBackendConfig()
    assert k.namespace == "mlworkshop" and k.storage == "hostPath" and k.uid == "auto"
    assert k.resources == {"nvidia": "nvidia.com/gpu", "ascend": "huawei.com/Ascend910"}
    for model in (KubernetesBackendConfig, type(k.shared)):
        for name, field in model.model_fields.items():
            assert field.description, f"spawner.kubernetes.{name} has no description"


@pytest.mark.parametrize(
    "section, message",
    [
        ({"namespace": "Bad_NS"}, "namespace name"),
        ({"uid": "0:0"}, "must not run as root"),
        ({"uid": "alice"}, "numeric uid"),
        ({"storage_capacity": "ten gigs"}, "quantity"),
        ({"hub_connect_url": "10.0.0.1:881"}, "http(s)://"),
        ({"home": "home/jovyan"}, "absolute path"),
        ({"resources": {"tpu": "google.com/tpu"}}, "nvidia and ascend"),
        ({"shared": {"type": "nfs"}}, "nfs_server"),
        ({"storage": "emptyDir"}, "hostPath"),
    ],
)
def test_bad_sections_are_refused_with_the_key(section, message):
    with pytest.raises(ValidationError) as info:
        MLWorkshopConfig.model_validate(
            {"spawner": {"backend": "kubernetes", "kubernetes": section}}
        )
    assert message in str(info.value)


def test_apply_spawner_sets_kubespawner_traits():
    cfg = MLWorkshopConfig.model_validate(
        {
            "spawner": {
                "backend": "kubernetes",
                "start_timeout": 90,
                "kubernetes": {
                    "namespace": "class1",
                    "hub_connect_url": "http://10.1.0.1:881",
                    "storage": "pvc",
                    "storage_class": "local-path",
                    "extra": {"priority_class_name": "students"},
                },
            }
        }
    )
    c = Config()
    apply_spawner(c, cfg, SITE)
    s = c.KubeWorkspaceSpawner
    assert c.JupyterHub.spawner_class == "mlworkshop.hub.kube_backend.KubeWorkspaceSpawner"
    assert s.namespace == "class1" and s.storage_pvc_ensure is True
    assert s.storage_class == "local-path" and s.delete_pvc is False
    assert s.hub_connect_url == "http://10.1.0.1:881" and c.JupyterHub.hub_ip == "0.0.0.0"
    assert s.start_timeout == 90 and s.priority_class_name == "students"
    assert s.kubernetes["namespace"] == "class1"  # the whole section, checked by the spawner
    assert c.WorkshopSpawner.site_root == str(SITE.root)  # the shared lifecycle's settings too


def test_the_spawner_class_checks_its_section():
    """A bad section set in jupyterhub_config.d/ is refused with its key, not at each spawn."""
    from traitlets import TraitError

    from mlworkshop.hub.kube_backend import KubeWorkspaceSpawner

    with pytest.raises(TraitError, match="kubernetes.uid"):
        KubeWorkspaceSpawner._valid_kubernetes(None, {"value": {"uid": "0"}})


def test_pod_ids_are_the_accounts_and_never_root():
    assert k8s_objects.pod_ids(kcfg(), (70001, 70001)) == (70001, 70001)
    assert k8s_objects.pod_ids(kcfg(), None) == (1000, 100)
    assert k8s_objects.pod_ids(kcfg(uid="2000:2000"), (70001, 70001)) == (2000, 2000)
    with pytest.raises(ValueError, match="root"):
        k8s_objects.pod_ids(kcfg(), (0, 0))


def test_security_context_is_non_root_without_escalation():
    sec = k8s_objects.security(70001, 70001, [990])
    assert sec["uid"] == 70001 and sec["gid"] == 70001 and sec["fs_gid"] == 70001
    assert sec["supplemental_gids"] == [100, 990]
    assert sec["allow_privilege_escalation"] is False and sec["privileged"] is False
    assert sec["container_security_context"]["runAsNonRoot"] is True
    assert sec["container_security_context"]["capabilities"] == {"drop": ["ALL"]}


def _mounts(volumes, mounts):
    by_name = {v["name"]: v for v in volumes}
    return {m["mountPath"]: (by_name[m["name"]], m) for m in mounts}


def test_host_path_workspace_mounts_only_the_users_own_folders():
    volumes, mounts = k8s_objects.workspace_volumes(
        kcfg(),
        username="alice",
        is_admin=False,
        site_root=Path("/srv/site"),
        content_dir=Path("/srv/site/content"),
        work_dir=Path("/srv/site/users/alice/work"),
        pvc_name="mlw-work-alice",
    )
    m = _mounts(volumes, mounts)
    assert m["/home/jovyan/work"][0]["hostPath"]["path"] == "/srv/site/users/alice/work"
    assert m["/home/jovyan/work"][1]["readOnly"] is False
    for kind in ("lessons", "datasets", "models"):
        volume, mount = m[f"/home/jovyan/{kind}"]
        assert volume["hostPath"]["path"] == f"/srv/site/content/{kind}" and mount["readOnly"]
    volume, mount = m["/home/jovyan/submissions"]
    assert volume["hostPath"]["path"] == "/srv/site/submissions/alice" and not mount["readOnly"]
    paths = [v["hostPath"]["path"] for v in volumes]
    assert not any("bob" in p for p in paths) and "/srv/site/users" not in paths


def test_admins_see_every_submission_read_only():
    volumes, mounts = k8s_objects.workspace_volumes(
        kcfg(),
        username="teacher",
        is_admin=True,
        site_root=Path("/srv/site"),
        content_dir=Path("/srv/site/content"),
        work_dir=Path("/srv/site/users/teacher/work"),
        pvc_name="x",
    )
    volume, mount = _mounts(volumes, mounts)["/home/jovyan/submissions"]
    assert volume["hostPath"]["path"] == "/srv/site/submissions" and mount["readOnly"]


def test_claims_and_shared_volume_use_sub_paths():
    cfg = kcfg(storage="pvc", shared={"type": "pvc", "claim": "course"})
    volumes, mounts = k8s_objects.workspace_volumes(
        cfg,
        username="alice",
        is_admin=False,
        site_root=Path("/srv/site"),
        content_dir=Path("/srv/site/content"),
        work_dir=Path("/unused"),
        pvc_name="mlw-work-alice",
    )
    m = _mounts(volumes, mounts)
    assert m["/home/jovyan/work"][0]["persistentVolumeClaim"]["claimName"] == "mlw-work-alice"
    volume, mount = m["/home/jovyan/lessons"]
    assert volume["persistentVolumeClaim"]["claimName"] == "course"
    assert mount["subPath"] == "content/lessons" and mount["readOnly"]
    assert m["/home/jovyan/submissions"][1]["subPath"] == "submissions/alice"
    assert not m["/home/jovyan/submissions"][1]["readOnly"]
    nfs = k8s_objects.shared_volume(kcfg(shared={"type": "nfs", "nfs_server": "10.0.0.5"}))
    assert nfs["nfs"] == {"server": "10.0.0.5", "path": "/"}


def test_submissions_folder_made_once_by_an_init_container_on_shared_storage():
    assert k8s_objects.submissions_init_container(kcfg(), "alice", 7, 8, "img") == []
    cfg = kcfg(shared={"type": "pvc"})
    (init,) = k8s_objects.submissions_init_container(cfg, "alice", 70001, 990, "img")
    script = init["command"][-1]
    assert "chown 70001:990 /shared/submissions/alice" in script
    assert "! -L /shared/submissions/alice" in script  # never through a link
    assert "{" not in script  # KubeSpawner expands braces in its objects


def test_resources_from_profile_with_extended_resources():
    cfg = kcfg(request_fraction=0.5)
    r = k8s_objects.resources(cfg, 4.0, 16 * 2**30, "nvidia", 1)
    assert r["cpu_limit"] == 4.0 and r["cpu_guarantee"] == 2.0
    assert r["mem_limit"] == 16 * 2**30 and r["mem_guarantee"] == 8 * 2**30
    assert r["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    assert r["extra_resource_guarantees"] == {"nvidia.com/gpu": "1"}
    npu = k8s_objects.resources(cfg, None, None, "ascend", 2)
    assert npu["extra_resource_limits"] == {"huawei.com/Ascend910": "2"}
    assert npu["cpu_limit"] is None and npu["mem_limit"] is None
    assert k8s_objects.resources(cfg, 2, 2**30, None, 0)["extra_resource_limits"] == {}


def test_placement_by_profile_slug_then_kind():
    cfg = kcfg(
        profile_images={"gpu": "localhost/mlworkshop-user:cuda"},
        node_selectors={"gpu": {"accelerator": "a100"}, "gpu-2": {"accelerator": "h200"}},
        tolerations={"gpu": [{"key": "nvidia.com/gpu", "operator": "Exists"}]},
    )
    one = k8s_objects.placement(cfg, "gpu-1")
    assert one["image"].endswith(":cuda") and one["node_selector"] == {"accelerator": "a100"}
    assert one["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert k8s_objects.placement(cfg, "gpu-2")["node_selector"] == {"accelerator": "h200"}
    cpu = k8s_objects.placement(cfg, "cpu")
    assert cpu == {"node_selector": {}, "tolerations": [], "image": cfg.image}


def test_labels_are_valid_label_values():
    labels = k8s_objects.labels("/srv/mlworkshop", "li_wei-")
    assert all(len(v) <= 63 and "/" not in v for v in labels.values())
    assert k8s_objects.label_value("alice") == "alice"


def test_pod_reading_from_stats_summary():
    summary = {
        "pods": [
            {"podRef": {"name": "mlw-bob", "namespace": "ns"}, "cpu": {"usageCoreNanoSeconds": 1}},
            {
                "podRef": {"name": "mlw-alice", "namespace": "ns"},
                "cpu": {"usageCoreNanoSeconds": 2_500_000_000},
                "memory": {"workingSetBytes": 1234},
            },
        ]
    }
    assert pod_reading(summary, "ns", "mlw-alice") == (2.5, 1234)
    assert pod_reading(summary, "other", "mlw-alice") is None


KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: lab, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: hub, user: {token: not-used}}]
contexts: [{name: lab, context: {cluster: lab, user: hub}}]
current-context: lab
"""


async def test_kubespawner_writes_our_pieces_into_the_pod(tmp_path, monkeypatch):
    """The pod manifest KubeSpawner itself builds from what start_backend sets (no API call: the
    kubeconfig names a closed port). Also: spawner.kubernetes.kubeconfig is the one KubeSpawner
    loads, though kubernetes_asyncio read $KUBECONFIG when it was imported (before the fix the
    spawner could not even be made: "Config not found: /root/.kube/config")."""
    from kubernetes_asyncio.client import ApiClient
    from kubernetes_asyncio.config import kube_config

    from mlworkshop.hub.kube_backend import KubeWorkspaceSpawner

    monkeypatch.delenv("KUBECONFIG", raising=False)  # restored afterwards, as is the constant
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", "/nonexistent/kubeconfig")
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    c = Config()
    c.KubeWorkspaceSpawner.kubernetes = {"kubeconfig": str(path), "shared": {"type": "pvc"}}
    spawner = KubeWorkspaceSpawner(_mock=True, config=c)  # KubeSpawner's own test stand-ins
    k = spawner.kube
    for key, value in k8s_objects.security(70001, 70001, [990]).items():
        setattr(spawner, key, value)
    spawner.volumes, spawner.volume_mounts = k8s_objects.workspace_volumes(
        k,
        username="alice",
        is_admin=False,
        site_root=Path("/srv/s"),
        content_dir=Path("/srv/s/content"),
        work_dir=Path("/unused"),
        pvc_name="mlw-work-alice",
    )
    spawner.init_containers = k8s_objects.submissions_init_container(k, "alice", 70001, 990, "i")
    for key, value in k8s_objects.resources(k, 2.0, 4 * 2**30, "nvidia", 1).items():
        setattr(spawner, key, value)
    api = ApiClient()
    try:
        pod = api.sanitize_for_serialization(await spawner.get_pod_manifest())
    finally:
        await api.close()
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert container["securityContext"]["runAsUser"] == 70001
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert spec["securityContext"] == {"fsGroup": 70001, "supplementalGroups": [100, 990]}
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["requests"]["cpu"] == 1.0
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/home/jovyan/lessons"]["readOnly"] is True
    assert mounts["/home/jovyan/submissions"]["subPath"] == "submissions/alice"
    assert spec["initContainers"][0]["name"] == "submissions-folder"
    assert {v["name"] for v in spec["volumes"]} == {"work", "shared"}
