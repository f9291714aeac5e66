"""Find the small data files shipped with a lesson, even from a copy of the notebook elsewhere."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def bundled_lesson_dir(lesson: str) -> Path:
    """The lesson's folder inside the installed mlworkshop package."""
    return Path(str(resources.files("mlworkshop"))) / "bundled" / "lessons" / lesson


def lesson_file(name: str, lesson: str, notebook_dir: str | os.PathLike | None = None) -> Path:
    """``name`` next to the notebook if it is there, else the copy shipped in the package.

    A student who copies only the .ipynb into ``work/`` still gets the lesson's data.
    """
    here = Path(notebook_dir) if notebook_dir is not None else Path.cwd()
    for candidate in (here / name, bundled_lesson_dir(lesson) / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{name}: not next to the notebook ({here}) nor in the bundled lesson {lesson}"
    )
