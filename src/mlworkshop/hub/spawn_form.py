"""The spawn form's HTML, from a Jinja template beside the hub's other pages (templates/).

The accelerators package decides *what* may be chosen (profiles, why others are missing); this
module only shows it. Autoescaping is on: profile names and descriptions come from the config, and
notes may quote what a user sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import jinja2

from ..accelerators.profiles import FORM_FIELD, Profile
from ..i18n import install_jinja

TEMPLATES = Path(__file__).parent / "templates"
_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
    extensions=["jinja2.ext.i18n"],
)
install_jinja(_ENV)  # the form in the language of the request that asks for it (i18n.py)


def render_options_form(
    profiles: Sequence[Profile], notes: Sequence[str] = (), quota_note: str | None = None
) -> str:
    """Radio buttons, first one checked, below `notes` (why_not_offered). "" when there is nothing
    to choose and nothing to say (no form at all: the server starts at once). With `quota_note`
    (what the usage budget hid) there is always a form, even for one profile: without one
    JupyterHub would re-use the last choice (a GPU the quota now refuses) and the student could
    never pick the CPU-only server."""
    if len(profiles) <= 1 and not notes and not quota_note:
        return ""
    return _ENV.get_template("spawn_form.html").render(
        profiles=list(profiles), notes=list(notes), quota_note=quota_note, field=FORM_FIELD
    )
