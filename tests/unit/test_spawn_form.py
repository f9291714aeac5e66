"""The spawn form from its Jinja template: what the accelerators decide, shown safely."""

from __future__ import annotations

from mlworkshop.accelerators.profiles import Profile
from mlworkshop.hub.spawn_form import render_options_form

CPU = Profile("cpu", "CPU only", None, 0, 2.0, "4G", "for lessons")
GPU = Profile("gpu-1", "1 × GPU", "nvidia", 1, 8.0, "32G")


def test_radio_per_profile_first_checked():
    form = render_options_form([CPU, GPU])
    assert form.count('type="radio"') == 2
    assert 'id="mlw-profile-cpu" value="cpu" checked>' in form
    assert 'value="gpu-1">' in form and 'value="gpu-1" checked' not in form
    assert "<strong>1 × GPU</strong>" in form
    assert "for lessons · " in form  # description and resources on one line


def test_nothing_to_choose_is_no_form_but_a_quota_note_always_is():
    assert render_options_form([CPU]) == ""
    form = render_options_form([CPU], (), "GPU hours used up")
    assert "mlw-quota-note" in form and 'value="cpu"' in form


def test_names_notes_and_quota_notes_are_escaped():
    hostile = Profile('x"><script>', "<img src=x onerror=alert(1)>", None, 0, None, None)
    form = render_options_form([CPU, hostile], ["<b>no GPU</b>"], "<i>quota</i>")
    assert "<script>" not in form and "<img" not in form and "<b>" not in form and "<i>" not in form
    assert "&lt;img src=x onerror=alert(1)&gt;" in form and "&lt;b&gt;no GPU&lt;/b&gt;" in form
