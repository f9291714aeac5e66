"""The accelerators: section: defaults, and messages that name the problem."""

from __future__ import annotations

import pytest

from mlworkshop.config import ConfigError
from mlworkshop.config.loader import validate
from mlworkshop.config.model import MLWorkshopConfig


def test_defaults():
    acc = MLWorkshopConfig().accelerators
    assert (acc.mode, acc.detect, acc.inventory, acc.slots_per_device) == ("shared", True, [], 1)
    assert (acc.max_per_user, acc.group_limits, acc.admins_exempt) == (1, {}, False)
    assert acc.device_groups == {"nvidia": ["video", "render"], "ascend": ["HwHiAiUser"]}
    assert (acc.profiles.cpu.cpu_limit, acc.profiles.cpu.mem_limit) == (2, "4G")
    assert (acc.profiles.per_device.cpu_limit, acc.profiles.per_device.mem_limit) == (4, "16G")


def test_every_field_has_a_description():
    from pydantic import BaseModel

    from mlworkshop.config import accelerators as module

    for model in (
        module.AcceleratorsConfig,
        module.DeviceSpec,
        module.CpuProfileLimits,
        module.DeviceProfileLimits,
    ):
        for name, field in model.model_fields.items():
            annotation = field.annotation
            nested = isinstance(annotation, type) and issubclass(annotation, BaseModel)
            assert nested or field.description, f"{model.__name__}.{name} has no description"


def test_a_full_section_is_accepted():
    cfg = validate(
        {
            "accelerators": {
                "mode": "exclusive",
                "slots_per_device": 2,
                "max_per_user": 1,
                "admins_exempt": True,
                "group_limits": {"staff": 4, "students": 1},
                "inventory": [
                    {
                        "kind": "nvidia",
                        "index": 0,
                        "uuid": "GPU-x",
                        "name": "Tesla T4",
                        "memory_mib": 15360,
                    }
                ],
                "profiles": {
                    "cpu": {"cpu_limit": 1, "mem_limit": "2G"},
                    "per_device": {"cpu_limit": 8, "mem_limit": "64g"},
                },
                "device_groups": {"nvidia": ["video"]},
            }
        },
        "test",
    )
    assert cfg.accelerators.profiles.per_device.mem_limit == "64G"
    assert cfg.accelerators.inventory[0].name == "Tesla T4"


@pytest.mark.parametrize(
    "section, words",
    [
        ({"mode": "exclusiv"}, ["accelerators.mode", "'shared' or 'exclusive'"]),
        ({"slots_per_device": 0}, ["accelerators.slots_per_device", "greater than or equal to 1"]),
        ({"max_per_user": -1}, ["accelerators.max_per_user"]),
        (
            {"group_limits": {"students": -2}},
            ["accelerators.group_limits", "'students' has a negative limit"],
        ),
        (
            {"inventory": [{"kind": "amd", "index": 0}]},
            ["accelerators.inventory.0.kind", "'nvidia' or 'ascend'"],
        ),
        (
            {"inventory": [{"kind": "nvidia", "index": 0}, {"kind": "nvidia", "index": 0}]},
            ["nvidia device 0 twice"],
        ),
        (
            {"inventory": [{"kind": "nvidia", "index": 0, "vram": 3}]},
            ["unknown key 'accelerators.inventory.0.vram'"],
        ),
        (
            {"profiles": {"per_device": {"mem_limit": "lots"}}},
            ["accelerators.profiles.per_device.mem_limit", "4G"],
        ),
        (
            {"device_groups": {"nvidia": ["bad group"]}},
            ["accelerators.device_groups", "'bad group'"],
        ),
        ({"slot_per_device": 2}, ["Did you mean 'accelerators.slots_per_device'"]),
    ],
)
def test_bad_values_are_named(section, words):
    with pytest.raises(ConfigError) as caught:
        validate({"accelerators": section}, "mlworkshop.yaml")
    for word in words:
        assert word in str(caught.value)
