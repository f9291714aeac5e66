"""A new site carries the four bundled lessons; a student sees them read-only, copies one into
work/ and runs it there, inside their own server, as their own account."""

from __future__ import annotations

import pytest

from .hubctl import Server, mlw

pytestmark = [pytest.mark.integration, pytest.mark.lessons]

LESSONS = [
    "01-ml-fundamentals",
    "02-neural-networks",
    "03-transformer-architecture",
    "04-llm-overview",
]
PASSWORD = "Lesson-pass-2024"


async def test_student_copies_a_lesson_and_runs_it(make_hub):
    hub = make_hub()
    for lesson in LESSONS:
        assert (hub.site / "content" / "lessons" / lesson / f"{lesson}.ipynb").is_file(), (
            f"init did not copy {lesson}"
        )
    mlw(hub.site, "user", "add", "lin", "--password-stdin", input=PASSWORD + "\n")
    hub.start()
    browser = hub.browser()
    assert browser.login("lin", PASSWORD).status_code == 302
    browser.start_server("lin")
    lin = Server(hub.url, "lin", browser.new_token("lin"))

    listed = {item["name"] for item in lin.contents("GET", "lessons").json()["content"]}
    assert set(LESSONS) <= listed
    source = f"lessons/{LESSONS[0]}/{LESSONS[0]}.ipynb"
    assert lin.contents("GET", source).json()["writable"] is False
    overwrite = lin.contents(
        "PUT", source, json={"type": "file", "format": "text", "content": "gone"}
    )
    assert overwrite.status_code >= 400

    copied = lin.contents("POST", "work", json={"copy_from": source})
    assert copied.status_code == 201, copied.text
    path = copied.json()["path"]
    out = await lin.run_code(
        f"""
import nbformat, os
from nbclient import NotebookClient
nb = nbformat.read({path!r}, as_version=4)
NotebookClient(nb, timeout=600, kernel_name="python3", resources={{"metadata": {{"path": "work"}}}}).execute()
errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
print("RAN", len(nb.cells), "cells,", len(errors), "errors, uid", os.getuid())
""",
        timeout=600,
    )
    assert "RAN" in out and " 0 errors" in out, out
