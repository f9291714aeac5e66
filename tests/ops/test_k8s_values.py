"""`mlworkshop k8s values`: the z2jh values made from mlworkshop.yaml, merged over the chart's own
defaults, validate against the chart's values schema (../shared/z2jh/, the chart's data), and the
in-chart configure (hub/chart_config.py) keeps the chart's own services beside ours."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML
from traitlets.config import Config

from mlworkshop.config import MLWorkshopConfig
from mlworkshop.ops.k8s_values import ValuesError, chart_values, merged, split_image

Z2JH = Path(__file__).resolve().parents[2].parent / "shared" / "z2jh"

pytestmark = pytest.mark.skipif(
    not (Z2JH / "values.schema.yaml").exists(), reason=f"the chart's data is not at {Z2JH}"
)


def _load(name: str):
    return YAML(typ="safe", pure=True).load((Z2JH / name).read_text())


def chart_cfg(**kubernetes) -> MLWorkshopConfig:
    section = {"storage": "pvc", "shared": {"type": "pvc", "claim": "course"}, **kubernetes}
    return MLWorkshopConfig.model_validate(
        {
            "spawner": {"backend": "kubernetes", "kubernetes": section},
            "culler": {"timeout": 1800, "every": 120},
        }
    )


def validate(values: dict) -> None:
    jsonschema.Draft7Validator(_load("values.schema.yaml")).validate(
        merged(_load("values.yaml"), values)
    )


def test_generated_values_validate_against_the_charts_schema():
    cfg = chart_cfg(
        storage_class="local-path",
        profile_images={"gpu": "registry.lab:5000/mlw-user:cuda"},
        node_selectors={"cpu": {"pool": "cpu"}},
        tolerations={"cpu": [{"key": "students", "operator": "Exists", "effect": "NoSchedule"}]},
    )
    values = chart_values(cfg)
    validate(values)
    assert values["hub"]["image"] == {
        "name": "localhost/mlworkshop-hub",
        "tag": "latest",
        "pullPolicy": "IfNotPresent",
    }
    assert "configure_in_chart(c)" in values["hub"]["extraConfig"]["mlworkshop"]
    assert "backend: kubernetes" in values["hub"]["extraFiles"]["mlworkshop-yaml"]["stringData"]
    assert values["cull"]["timeout"] == 1800 and values["cull"]["every"] == 120
    assert values["singleuser"]["storage"]["dynamic"]["storageClass"] == "local-path"
    assert values["prePuller"]["extraImages"]["mlw-gpu"] == {
        "name": "registry.lab:5000/mlw-user",
        "tag": "cuda",
    }


def test_the_schema_check_is_real():
    """The same check refuses a value of the wrong type (so a pass above means something)."""
    values = chart_values(chart_cfg())
    values["singleuser"]["cpu"]["limit"] = "lots"
    with pytest.raises(jsonschema.ValidationError):
        validate(values)


def test_host_path_storage_is_refused_for_the_chart():
    cfg = MLWorkshopConfig.model_validate({"spawner": {"backend": "kubernetes"}})
    with pytest.raises(ValuesError, match="storage to pvc"):
        chart_values(cfg)


@pytest.mark.parametrize(
    "reference, parts",
    [
        (
            "localhost/mlworkshop-user:latest",
            {"name": "localhost/mlworkshop-user", "tag": "latest"},
        ),
        ("registry:5000/user", {"name": "registry:5000/user", "tag": "latest"}),
        ("quay.io/x/y@sha256:abc", {"name": "quay.io/x/y@sha256:abc"}),
    ],
)
def test_split_image(reference, parts):
    assert split_image(reference) == parts


def test_in_chart_configure_keeps_the_charts_services(tmp_path):
    from mlworkshop.hub.chart_config import configure_in_chart
    from mlworkshop.ops.k8s_values import chart_values

    values = chart_values(chart_cfg())
    config_file = tmp_path / "mlworkshop.yaml"
    config_file.write_text(values["hub"]["extraFiles"]["mlworkshop-yaml"]["stringData"])
    c = Config()
    c.JupyterHub.db_url = "sqlite:///jupyterhub.sqlite"  # the chart's (hub.db.type sqlite-pvc)
    c.JupyterHub.services = [{"name": "idle-culler", "command": ["cull"]}]
    c.JupyterHub.load_roles = [{"name": "idle-culler", "scopes": ["read:servers"]}]
    env = {
        "MLWORKSHOP_SPAWNER__BACKEND": "docker",  # the hub image's own (Dockerfile.hub) ...
        **values["hub"]["extraEnv"],  # ... which the chart's values replace
        "MLWORKSHOP_SITE": str(tmp_path / "site"),
        "MLWORKSHOP_CONFIG_FILE": str(config_file),
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",  # the pod's in-cluster API
        "KUBERNETES_SERVICE_PORT": "443",
    }
    configure_in_chart(c, env)
    names = [s["name"] for s in c.JupyterHub.services]
    assert names.count("idle-culler") == 1 and "mlworkshop-cli" in names
    assert c.JupyterHub.spawner_class == "mlworkshop.hub.kube_backend.KubeWorkspaceSpawner"
    assert c.JupyterHub.authenticator_class == "mlworkshop.hub.auth.MLWorkshopAuthenticator"
    assert c.KubeWorkspaceSpawner.isolate_users is False
    # one database for the hub, the accounts and the device table, on the hub's claim: the chart's
    # relative sqlite URL named a file in the hub's working folder (/ in our image: not writable)
    site_db = f"sqlite:///{tmp_path / 'site' / 'state' / 'jupyterhub.sqlite'}"
    assert c.JupyterHub.db_url == c.MLWorkshopAuthenticator.db_url == site_db
    # the pages as outside the cluster: our templates use the i18n tags ({% trans %}: without the
    # extension the login page was a 500) and are given their values (the Sign up link)
    extensions = c.JupyterHub.jinja_environment_options["extensions"]
    assert "mlworkshop.hub.i18n.HubI18n" in extensions
    assert c.JupyterHub.template_vars["mlw_signup"] is True
    # the usage service: routed by the hub Service's name on the port the values open, listening
    # on the pod's address, with the in-cluster API a service's environment would not have
    [usage] = [s for s in c.JupyterHub.services if s["name"] == "usage"]
    assert usage["url"] == "http://hub:8082"
    assert usage["environment"]["MLWORKSHOP_USAGE_BIND"] == "0.0.0.0"
    assert usage["environment"]["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert values["hub"]["service"]["extraPorts"] == [
        {"name": "usage", "port": 8082, "targetPort": 8082}
    ]
    # both NetworkPolicies let the proxy through to it: the hub's ingress, the proxy's egress
    [ingress] = values["hub"]["networkPolicy"]["ingress"]
    [egress] = values["proxy"]["chp"]["networkPolicy"]["egress"]
    assert ingress["ports"] == egress["ports"] == [{"port": 8082}]
    assert egress["to"] == [{"podSelector": {"matchLabels": {"component": "hub"}}}]
    assert (tmp_path / "site" / "mlworkshop.yaml").read_text() == config_file.read_text()


@pytest.mark.parametrize("mem_limit", ["1G", "768M", "1000000000", "1.5G"])
def test_memory_reaches_kubespawner_as_a_valid_specification(mem_limit):
    """The chart's config sets KubeSpawner.mem_limit/mem_guarantee from singleuser.memory: a bare
    number string ("1073741824") made every spawn in the chart a 500."""
    from jupyterhub.traitlets import ByteSpecification
    from traitlets import HasTraits

    from mlworkshop.sizes import parse_bytes

    class Spawner(HasTraits):
        mem = ByteSpecification(None, allow_none=True)

    cfg = chart_cfg()
    cfg.accelerators.profiles.cpu.mem_limit = mem_limit
    memory = chart_values(cfg)["singleuser"]["memory"]
    spawner = Spawner()
    spawner.mem = memory["limit"]  # refused with a TraitError before
    assert 0 <= spawner.mem - parse_bytes(mem_limit) < 1024
    spawner.mem = memory["guarantee"]
    assert spawner.mem <= parse_bytes(mem_limit)


def test_the_doctor_in_the_hubs_pod_checks_the_charts_proxy(monkeypatch):
    """In the chart the proxy is another pod: the doctor's hub check (run by its watch service in
    the hub's pod) went to 127.0.0.1:8000, nobody's, and reported the hub down."""
    from mlworkshop.ops.doctor.hub_checks import _hub_url

    cfg = chart_cfg()
    env = chart_values(cfg)["hub"]["extraEnv"]
    monkeypatch.setenv("MLWORKSHOP_HUB_URL", env["MLWORKSHOP_HUB_URL"])
    assert _hub_url(cfg) == "http://proxy-public/"
    monkeypatch.delenv("MLWORKSHOP_HUB_URL")
    assert _hub_url(cfg) == f"http://127.0.0.1:{cfg.hub.port}/"
