"""The docker backend's pure parts: spawner.docker validation, the traitlets it sets, device specs,
container names and the error messages. The real-container tests are in tests/containers/."""

from __future__ import annotations

import re
from pathlib import Path

import docker
import docker.errors
import pytest
from pydantic import ValidationError
from traitlets.config import Config

from mlworkshop.accelerators.inventory import Device
from mlworkshop.config import MLWorkshopConfig
from mlworkshop.config.docker import DockerBackendConfig
from mlworkshop.hub.configure import apply_spawner
from mlworkshop.hub.docker_backend import (
    DockerWorkspaceSpawner,
    _merge,
    _stricter,
    accelerator_host_config,
    apply_docker_spawner,
    explain_engine_error,
    parse_bytes,
)
from mlworkshop.site import Site

SITE = Site(Path("/srv/test-site"))


def cfg_with(**docker_section) -> MLWorkshopConfig:
    return MLWorkshopConfig.model_validate(
        {"spawner": {"backend": "docker", "docker": docker_section}}
    )


def test_defaults_are_valid_and_described():
    d = DockerBackendConfig()
    assert d.image_for(None) == "localhost/mlworkshop-user:latest"
    assert d.pull_policy == "ifnotpresent" and d.network == "bridge" and d.remove is True
    for name, field in DockerBackendConfig.model_fields.items():
        assert field.description, f"spawner.docker.{name} has no description"


@pytest.mark.parametrize(
    "section, message",
    [
        ({"default_image": "cuda"}, "default_image 'cuda' is not in images"),
        ({"images": []}, "list at least one image"),
        (
            {
                "images": [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}],
                "default_image": "a",
            },
            "must be unique",
        ),
        ({"profile_images": {"gpu": "nope"}}, "profile_images['gpu'] = 'nope' is not in images"),
        ({"mem_limit": "lots"}, "size such as 512M"),
        ({"user": "0:0"}, "must not run as root"),
        ({"user": "jovyan"}, "numeric uid"),
        ({"name_template": "jupyter"}, "must contain {username}"),
        ({"pull_policy": "sometimes"}, "never"),
        ({"hub_connect_url": "hub:8081"}, "http(s)://"),
        ({"group_add": ["users"]}, "numeric gid"),
        ({"network": "host", "user": "1000:100"}, "network host with user '1000:100'"),
    ],
)
def test_bad_values_are_refused_with_a_reason(section, message):
    with pytest.raises(ValidationError) as info:
        cfg_with(**section)
    assert message in str(info.value)


def test_apply_sets_the_spawner_and_hub_for_a_bridge_network():
    cfg = cfg_with(
        url="unix:///run/podman/podman.sock",
        images=[
            {"name": "default", "image": "localhost/u:1"},
            {"name": "cuda", "image": "localhost/u:cuda"},
        ],
        profile_images={"gpu": "cuda"},
        pull_policy="never",
        mem_limit="2G",
        cpu_limit=1.5,
        environment={"COURSE": "ml101"},
        extra={"extra_host_config": {"shm_size": "1g"}, "post_start_cmd": "true"},
    )
    cfg.spawner.environment = {"LANG": "C.UTF-8"}
    c = Config()
    apply_spawner(c, cfg, SITE)  # the shared entry point routes to the docker backend
    s = c.DockerWorkspaceSpawner
    assert c.JupyterHub.spawner_class == "mlworkshop.hub.docker_backend.DockerWorkspaceSpawner"
    assert s.client_kwargs == {"base_url": "unix:///run/podman/podman.sock"}
    assert s.image == "localhost/u:1"
    assert s.allowed_images == {"default": "localhost/u:1", "cuda": "localhost/u:cuda"}
    assert s.profile_images == {"gpu": "localhost/u:cuda"}
    assert s.pull_policy == "never" and s.remove is True
    assert s.mem_limit == "2G" and s.cpu_limit == 1.5
    assert s.environment == {"LANG": "C.UTF-8", "COURSE": "ml101"}
    assert s.network_name == "bridge" and s.auto_hub_connect_url is True
    assert c.JupyterHub.hub_ip == "0.0.0.0" and c.JupyterHub.hub_connect_ip == "127.0.0.1"
    assert (
        s.extra_host_config == {"shm_size": "1g"} and s.post_start_cmd == "true"
    )  # passed as they are
    assert c.WorkshopSpawner.site_root == "/srv/test-site"


def test_apply_host_network_and_a_fixed_hub_url():
    c = Config()
    cfg = cfg_with(network="host")
    cfg.hub.internal_port = 9081
    apply_docker_spawner(c, cfg, SITE)
    s = c.DockerWorkspaceSpawner
    assert s.network_name == "host" and s.host_network is True and s.use_internal_ip is True
    assert s.hub_connect_url == "http://127.0.0.1:9081" and s.auto_hub_connect_url is False
    assert "hub_ip" not in c.JupyterHub  # the hub stays on loopback

    c = Config()
    apply_docker_spawner(
        c, cfg_with(network="mlworkshop", hub_connect_url="http://hub:8081/"), SITE
    )
    assert c.DockerWorkspaceSpawner.network_name == "mlworkshop"
    assert c.DockerWorkspaceSpawner.hub_connect_url == "http://hub:8081"


def test_profile_picks_the_image():
    d = DockerBackendConfig(
        images=[{"name": "default", "image": "a"}, {"name": "cuda", "image": "b"}],
        profile_images={"gpu": "cuda", "cpu": "default"},
    )
    assert d.image_name_for_profile("gpu-2") == "cuda"
    assert d.image_name_for_profile("cpu") == "default"
    assert d.image_name_for_profile("npu-1") == "default"
    assert d.image_name_for_profile(None) == "default"


def test_container_names_are_safe_for_any_username():
    escape = DockerWorkspaceSpawner._escape
    names = ["alice", "Émile.O'Brien", "李雷", "a" * 60, "x-y", "x_y", "../../etc"]
    escaped = [escape(n) for n in names]
    for name in escaped:
        assert re.fullmatch(r"[a-z0-9-]+", name), name
    assert len(set(escaped)) == len(escaped)  # no two users share a container name


def test_nvidia_and_ascend_devices_in_the_spec():
    gpus = [Device("nvidia", 3), Device("nvidia", 1)]
    spec = accelerator_host_config(gpus)
    assert spec["host_config"] == {
        "device_requests": [
            {"Driver": "nvidia", "DeviceIDs": ["1", "3"], "Capabilities": [["gpu"]]}
        ]
    }
    # what the docker SDK sends to the engine
    host = docker.APIClient(base_url="unix:///nonexistent", version="1.41").create_host_config(
        **spec["host_config"]
    )
    assert host["DeviceRequests"][0]["DeviceIDs"] == ["1", "3"]
    assert accelerator_host_config(gpus, nvidia_cdi=True)["host_config"] == {
        "devices": ["nvidia.com/gpu=1", "nvidia.com/gpu=3"]
    }

    npus = accelerator_host_config([Device("ascend", 2)])
    assert "/dev/davinci2:/dev/davinci2:rwm" in npus["host_config"]["devices"]
    assert "/dev/davinci_manager:/dev/davinci_manager:rwm" in npus["host_config"]["devices"]
    assert npus["volumes"]["/usr/local/Ascend/driver"] == {
        "bind": "/usr/local/Ascend/driver",
        "mode": "ro",
    }
    assert npus["environment"] == {"ASCEND_VISIBLE_DEVICES": "2"}
    assert accelerator_host_config([]) == {"host_config": {}, "environment": {}, "volumes": {}}


def test_merge_keeps_our_devices_and_theirs():
    ours = {
        "devices": ["/dev/davinci0:/dev/davinci0:rwm"],
        "group_add": ["100"],
        "network_mode": "bridge",
    }
    theirs = {
        "devices": ["/dev/fuse:/dev/fuse:rwm"],
        "network_mode": "mlworkshop",
        "shm_size": "1g",
    }
    merged = _merge(ours, theirs)
    assert merged["devices"] == ["/dev/davinci0:/dev/davinci0:rwm", "/dev/fuse:/dev/fuse:rwm"]
    assert merged["network_mode"] == "mlworkshop" and merged["shm_size"] == "1g"


def test_limits_stricter_wins():
    assert parse_bytes("512M") == 512 * 1024**2 and parse_bytes("1.5G") == int(1.5 * 1024**3)
    assert (
        _stricter(None, 2.0) == 2.0 and _stricter(1.0, None) == 1.0 and _stricter(4.0, 2.0) == 2.0
    )


def test_engine_not_reachable_message():
    client = docker.APIClient(base_url="unix:///nonexistent/docker.sock", version="1.41")
    with pytest.raises(Exception) as info:
        client.ping()
    message = explain_engine_error(
        info.value, url="unix:///nonexistent/docker.sock", image="i", container="c"
    )
    assert message and "not reachable" in message and "spawner.docker.url" in message


def test_no_space_and_clash_and_missing_image_messages():
    class Response:
        status_code = 500
        reason = "Server Error"
        url = "http://x"

    full = docker.errors.APIError(
        "500 Server Error",
        Response(),
        explanation="write /var/lib/containers/storage: no space left on device",
    )
    message = explain_engine_error(full, url="u", image="i", container="mlw-alice")
    assert "ran out of disk space" in message and "system prune" in message

    Response.status_code = 409
    clash = docker.errors.APIError(
        "409 Conflict", Response(), explanation="name mlw-alice is already in use"
    )
    assert "docker rm -f mlw-alice" in explain_engine_error(
        clash, url="u", image="i", container="mlw-alice"
    )

    missing = docker.errors.ImageNotFound("No such image: localhost/x:1")
    message = explain_engine_error(missing, url="u", image="localhost/x:1", container="c")
    assert "mlworkshop images build" in message and "mlworkshop images load" in message
    assert explain_engine_error(ValueError("other"), url="u", image="i", container="c") is None
