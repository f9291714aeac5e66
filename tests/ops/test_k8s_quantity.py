"""ops/k8s.py's reading of Kubernetes quantities (what `k8s nodes` adds up) and of the kinds of
devices a site expects; the node operations themselves run on the real cluster (tests/k8s/)."""

from __future__ import annotations

import pytest

from mlworkshop.config.accelerators import AcceleratorsConfig
from mlworkshop.ops.k8s import device_kinds_in_use, quantity


@pytest.mark.parametrize(
    "text, value",
    [
        ("500m", 0.5),
        ("4", 4.0),
        ("16Gi", 16 * 2**30),
        ("1k", 1000.0),
        ("2M", 2e6),
        ("128974848", 128974848.0),
        ("", 0.0),
        (None, 0.0),
    ],
)
def test_quantity(text, value):
    assert quantity(text) == pytest.approx(value)


def test_device_kinds_from_the_inventory():
    assert device_kinds_in_use(AcceleratorsConfig()) == []
    acc = AcceleratorsConfig.model_validate(
        {"inventory": [{"kind": "ascend", "index": 0}, {"kind": "nvidia", "index": 0}]}
    )
    assert device_kinds_in_use(acc) == ["ascend", "nvidia"]
