"""Spawn profiles: what a user may take now, the options form, and server-side validation."""

from __future__ import annotations

import pytest

from mlworkshop.accelerators.allocator import Allocator, Limit, OverLimit
from mlworkshop.accelerators.inventory import Device
from mlworkshop.accelerators.limits import effective_limit
from mlworkshop.accelerators.profiles import (
    InvalidChoice,
    options_from_form,
    profiles_for,
    validate_choice,
    why_not_offered,
)
from mlworkshop.config.accelerators import AcceleratorsConfig
from mlworkshop.hub.spawn_form import (
    render_options_form,  # the form shows what profiles_for decides
)

GPUS = [Device("nvidia", i, f"GPU-{i}", "NVIDIA A100-SXM4-80GB", 81920) for i in range(4)]
NPUS = [Device("ascend", i, None, "910B3", 65536) for i in range(2)]


def _cfg(**values) -> AcceleratorsConfig:
    return AcceleratorsConfig(**{"mode": "exclusive", **values})


@pytest.fixture
def allocator(tmp_path):
    alloc = Allocator(f"sqlite:///{tmp_path / 'hub.sqlite'}", GPUS + NPUS)
    yield alloc
    alloc.close()


def _slugs(profiles):
    return [p.slug for p in profiles]


def test_no_devices_means_cpu_only_and_no_form():
    profiles = profiles_for("alice", [], False, _cfg(), [], None)
    assert _slugs(profiles) == ["cpu"]
    assert (profiles[0].cpu_limit, profiles[0].mem_limit) == (2, "4G")
    assert render_options_form(profiles) == ""


def test_shared_mode_is_one_choice_without_form():
    profiles = profiles_for("alice", [], False, _cfg(mode="shared"), GPUS + NPUS, None)
    assert _slugs(profiles) == ["shared"] and profiles[0].shared
    assert profiles[0].display_name == "Shared: 2 × NPU, 4 × GPU"
    assert render_options_form(profiles) == ""


def test_choices_follow_the_limit(allocator):
    profiles = profiles_for(
        "alice", ["students"], False, _cfg(max_per_user=2), GPUS + NPUS, allocator
    )
    assert _slugs(profiles) == ["cpu", "npu-1", "npu-2", "gpu-1", "gpu-2"]
    gpu2 = profiles[-1]
    assert (gpu2.kind, gpu2.count, gpu2.cpu_limit, gpu2.mem_limit) == ("nvidia", 2, 8, "32G")
    assert (
        gpu2.display_name == "2 × GPU" and "NVIDIA A100-SXM4-80GB, 80 GiB each" in gpu2.description
    )


def test_group_override_and_admin_exemption(allocator):
    cfg = _cfg(max_per_user=1, group_limits={"staff": 3}, admins_exempt=True)
    staff = profiles_for("bob", ["students", "staff"], False, cfg, GPUS, allocator)
    assert _slugs(staff) == ["cpu", "gpu-1", "gpu-2", "gpu-3"]
    admin = profiles_for("root", [], True, cfg, GPUS, allocator)
    assert _slugs(admin) == [
        "cpu",
        "gpu-1",
        "gpu-2",
        "gpu-3",
        "gpu-4",
    ]  # bounded by the hardware only
    not_exempt = profiles_for("root", [], True, _cfg(max_per_user=1), GPUS, allocator)
    assert _slugs(not_exempt) == ["cpu", "gpu-1"]


def test_busy_devices_are_hidden(allocator):
    for user in ("u1", "u2", "u3"):
        allocator.allocate(user, "", "nvidia", 1)
    profiles = profiles_for("alice", [], False, _cfg(max_per_user=4), GPUS, allocator)
    assert _slugs(profiles) == ["cpu", "gpu-1"]
    everything = profiles_for(
        "alice", [], False, _cfg(max_per_user=4), GPUS, allocator, only_free=False
    )
    assert _slugs(everything) == ["cpu", "gpu-1", "gpu-2", "gpu-3", "gpu-4"]


def test_user_at_limit_gets_cpu_only_without_form(allocator):
    allocator.allocate("alice", "first", "nvidia", 1)
    profiles = profiles_for("alice", [], False, _cfg(), GPUS, allocator, server_name="second")
    assert _slugs(profiles) == ["cpu"] and render_options_form(profiles) == ""
    # the same server, restarting, may take its device again
    again = profiles_for("alice", [], False, _cfg(), GPUS, allocator, server_name="first")
    assert _slugs(again) == ["cpu", "gpu-1"]


def test_all_devices_taken_the_form_offers_cpu_and_says_who_holds_them(allocator):
    for user in ("u1", "u2", "u3", "u4"):
        allocator.allocate(user, "", "nvidia", 1)
    offered = profiles_for("alice", [], False, _cfg(), GPUS, allocator)
    allowed = profiles_for("alice", [], False, _cfg(), GPUS, allocator, only_free=False)
    notes = why_not_offered(allowed, offered, allocator)
    assert _slugs(offered) == ["cpu"] and len(notes) == 1
    assert (
        notes[0].startswith("All 4 GPUs are in use (GPU 0 by u1 since ")
        and "GPU 3 by u4" in notes[0]
    )
    assert notes[0].endswith("Try again when one is free, or start a CPU-only server.")
    form = render_options_form(offered, notes)
    assert (
        'value="cpu" checked' in form and "All 4 GPUs are in use" in form
    )  # a form: the student reads why
    # nothing to explain: one free device is offered; a user whose limit is 0 is not told about devices
    allocator.release("u4", "")
    offered = profiles_for("alice", [], False, _cfg(), GPUS, allocator)
    assert why_not_offered(allowed, offered, allocator) == [] and _slugs(offered) == [
        "cpu",
        "gpu-1",
    ]
    no_gpus = profiles_for(
        "alice", [], False, _cfg(max_per_user=0), GPUS, allocator, only_free=False
    )
    assert why_not_offered(no_gpus, no_gpus[:1], allocator) == []
    assert (
        why_not_offered(allowed, offered[:1], allocator) == []
    )  # hidden (by a quota) while one is free


def test_crafted_request_for_8_gpus_is_refused(allocator):
    allowed = profiles_for(
        "alice", [], False, _cfg(max_per_user=2), GPUS, allocator, only_free=False
    )
    with pytest.raises(InvalidChoice) as caught:
        validate_choice("gpu-8", allowed)
    message = str(caught.value)
    assert "'gpu-8' is not available to you" in message
    assert "cpu (CPU only), gpu-1 (1 × GPU), gpu-2 (2 × GPU)" in message
    with pytest.raises(InvalidChoice):
        validate_choice("npu-1", allowed)  # no NPU on this host
    assert validate_choice("gpu-2", allowed).count == 2
    assert validate_choice(None, allowed).slug == "cpu"
    assert validate_choice("", allowed).slug == "cpu"


def test_allocator_enforces_the_limit_even_past_the_form(allocator):
    limit = effective_limit("alice", [], False, _cfg(max_per_user=1))
    allocator.allocate("alice", "a", "nvidia", 1, limit=limit)
    with pytest.raises(
        OverLimit, match=r"at most 1 device at once \(set by accelerators.max_per_user\)"
    ):
        allocator.allocate("alice", "b", "nvidia", 1, limit=limit)


def test_effective_limit_sources():
    cfg = _cfg(max_per_user=1, group_limits={"lab": 2, "staff": 4, "guests": 0}, admins_exempt=True)
    assert effective_limit("a", [], False, cfg) == Limit(1, "accelerators.max_per_user")
    assert effective_limit("a", ["lab", "staff"], False, cfg) == Limit(
        4, "accelerators.group_limits.staff (group staff)"
    )
    assert effective_limit("a", ["guests"], False, cfg) == Limit(
        0, "accelerators.group_limits.guests (group guests)"
    )
    assert effective_limit("a", ["guests"], True, cfg) == Limit(
        None, "accelerators.admins_exempt (admin)"
    )


def test_options_form_html():
    profiles = profiles_for("alice", [], False, _cfg(max_per_user=2), GPUS, None)
    form = render_options_form(profiles)
    assert form.count('type="radio" name="profile"') == 3
    assert 'value="cpu" checked' in form and 'value="gpu-2"' in form
    assert "8 CPUs · 32G memory" in form and "2 CPUs · 4G memory" in form


def test_options_form_escapes_names():
    evil = [Device("nvidia", 0, None, "<script>alert(1)</script>", None)]
    form = render_options_form(profiles_for("alice", [], False, _cfg(), evil, None))
    assert "<script>" not in form and "&lt;script&gt;" in form


def test_options_from_form():
    assert options_from_form({"profile": ["gpu-1"]}) == {"profile": "gpu-1"}
    assert options_from_form({"profile": "cpu"}) == {"profile": "cpu"}
    assert options_from_form({}) == {} and options_from_form({"profile": []}) == {}
