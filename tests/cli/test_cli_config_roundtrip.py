"""Every key of the config model round-trips through `config get` / `set` / `show` as YAML (issue 20).

The site holds a config where the awkward kinds of value are all present: lists and mappings of
objects (accelerators.inventory, spawner.docker.images, usage.quotas.groups), empty values,
strings that YAML would read as numbers or booleans, negative numbers, paths. The keys are not
listed by hand: they are walked from the model, so a key added later is covered too.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from ruamel.yaml import YAML

from mlworkshop.config import CONFIG_FILE, MLWorkshopConfig, load_config

from .clirun import mlw, mlw_here

RICH = {
    "hub": {"nice": -7, "base_url": "/jupyter/", "log_level": "DEBUG"},
    "auth": {"admin_users": ["prof", "ta-1"], "open_signup": True},
    "spawner": {
        "environment": {
            "HF_ENDPOINT": "https://hf-mirror.com",
            "SEED": "0123",
            "ANSWER": "yes",
            "EMPTY": "",
            "COLON": "a: b",
            "HASH": "x #y",
        },
        "docker": {
            "images": [
                {"name": "default", "image": "localhost/mlworkshop-user:latest"},
                {
                    "name": "cuda",
                    "image": "localhost/mlworkshop-user:cuda",
                    "description": "CUDA 12, PyTorch",
                },
            ],
            "profile_images": {"gpu": "cuda"},
            "cpu_limit": 1.5,
            "mem_limit": "3G",
            "group_add": ["100", "44"],
            "extra": {"extra_host_config": {"shm_size": "2g"}, "debug": True},
        },
    },
    "workspace": {"content_dir": "/srv/course/content"},
    "accelerators": {
        "mode": "exclusive",
        "inventory": [
            {
                "kind": "nvidia",
                "index": 0,
                "uuid": "GPU-1234",
                "name": "NVIDIA A100-SXM4-80GB",
                "memory_mib": 81920,
            },
            {"kind": "nvidia", "index": 1},
            {"kind": "ascend", "index": 3, "name": "910B3"},
        ],
        "max_per_user": 1,
        "group_limits": {"staff": 4},
        "device_groups": {"nvidia": ["video"], "ascend": []},
        "profiles": {"cpu": {"cpu_limit": None, "mem_limit": "4G"}},
    },
    "usage": {
        "rates": {"gpu_hour": 1.25, "currency": "CNY"},
        "quotas": {
            "default": {"gpu_hours_per_week": 10},
            "groups": {"staff": {"gpu_hours_per_week": 40, "max_devices": 2}},
            "users": {"ann": {"max_servers": 0}},
        },
    },
}


def _keys(model: type[BaseModel], prefix: str = ""):
    """Every key of the schema, sections and leaves, in the model's order."""
    for name, field in model.model_fields.items():
        key = prefix + name
        yield key
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _keys(annotation, key + ".")


def _yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(io.StringIO(text))


def _value(data: dict, key: str) -> Any:
    for part in key.split("."):
        data = data[part]
    return data


@pytest.fixture
def rich_site(site) -> Path:
    document = YAML().load((site / CONFIG_FILE).read_text())
    for section, values in RICH.items():
        document.setdefault(section, {}).update(values)
    buffer = io.StringIO()
    YAML().dump(document, buffer)
    (site / CONFIG_FILE).write_text(buffer.getvalue())
    return site


def test_every_key_round_trips_through_get_and_set(rich_site):
    before = load_config(rich_site, {})
    expected = before.model_dump(mode="json")
    keys = list(_keys(MLWorkshopConfig))
    assert (
        "accelerators.inventory" in keys
        and "usage.quotas.groups" in keys
        and "spawner.docker.images" in keys
    )
    for key in keys:
        got = mlw_here(rich_site, "config", "get", key)
        assert got.returncode == 0 and "error" not in got.output, got
        assert _yaml(got.stdout) == _value(expected, key), got

        written = mlw_here(rich_site, "config", "set", key, got.stdout.rstrip("\n"))
        assert written.returncode == 0, written
        echoed = written.stdout.strip()
        assert echoed.startswith(f"{key} = ") and echoed.endswith(" (restart the hub to apply)"), (
            written
        )
        shown = echoed.removeprefix(f"{key} = ").removesuffix(" (restart the hub to apply)")
        assert _yaml(shown) == _value(expected, key), (
            written
        )  # the echo is the YAML that was written
    assert load_config(rich_site, {}) == before  # (each later `get` also read back what was set)


def test_show_is_yaml_a_site_can_load_again(rich_site, tmp_path):
    before = load_config(rich_site, {})
    shown = mlw(rich_site, "config", "show")
    assert shown.returncode == 0, shown
    assert _yaml(shown.stdout) == before.model_dump(mode="json")
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / CONFIG_FILE).write_text(shown.stdout)
    assert load_config(copy, {}) == before


def test_the_issue_20_inventory_commands(site):
    """The commands of the report, as a lab admin typed them."""
    written = mlw(
        site,
        "config",
        "set",
        "accelerators.inventory",
        "[{kind: nvidia, index: 0, name: Fake GPU}, {kind: nvidia, index: 1, name: Fake GPU}]",
    )
    assert written.returncode == 0, written
    assert "DeviceSpec(" not in written.output and "kind: nvidia" in written.stdout, written
    got = mlw(site, "config", "get", "accelerators.inventory")
    assert got.returncode == 0 and "unexpected error" not in got.output, got
    assert _yaml(got.stdout) == [
        {"kind": "nvidia", "index": 0, "uuid": None, "name": "Fake GPU", "memory_mib": None},
        {"kind": "nvidia", "index": 1, "uuid": None, "name": "Fake GPU", "memory_mib": None},
    ]
