"""hub/ports.py: which of a root hub's loopback ports a student could bind while it is stopped."""

from __future__ import annotations

import os

import pytest

from mlworkshop.config import MLWorkshopConfig
from mlworkshop.hub.ports import student_bindable, unprivileged_port_start, warning


def test_the_kernels_setting_is_read(tmp_path):
    sysctl = tmp_path / "ip_unprivileged_port_start"
    sysctl.write_text("600\n")
    assert unprivileged_port_start(sysctl) == 600
    assert unprivileged_port_start(tmp_path / "missing") == 1024  # older kernels: the classic limit
    sysctl.write_text("garbage")
    assert unprivileged_port_start(sysctl) == 1024


@pytest.mark.skipif(os.geteuid() != 0, reason="the defaults below 1024 are a root hub's")
def test_a_root_hubs_defaults_are_out_of_students_reach():
    cfg = MLWorkshopConfig()
    assert (cfg.hub.api_port, cfg.hub.proxy_port) == (881, 882)
    assert student_bindable(cfg, 1024) == []
    assert warning(cfg, 1024) is None


def test_ports_a_student_could_bind_are_named_with_the_fix():
    cfg = MLWorkshopConfig.model_validate({"hub": {"internal_port": 8081, "proxy_api_port": 700}})
    assert student_bindable(cfg, 1024) == [("hub.internal_port", 8081)]
    text = warning(cfg, 1024)
    assert (
        "hub.internal_port 8081" in text and "hub.proxy_api_port" in text and "below 1024" in text
    )
    # an admin who lowered the sysctl hears about that too
    lowered = warning(cfg, 0)
    assert (
        "hub.proxy_api_port 700" in lowered
        and "sysctl net.ipv4.ip_unprivileged_port_start=1024" in lowered
    )
