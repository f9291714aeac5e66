"""Generate the four bundled lesson notebooks (stored without outputs).

    .venv/bin/python scripts/make_lessons.py          # writes src/mlworkshop/bundled/lessons/*/*.ipynb

The notebooks are the shipped artefact; this script is how they are kept readable in review.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "mlworkshop" / "bundled" / "lessons"

sys.path.insert(0, str(Path(__file__).resolve().parent / "lesson_sources"))
NAMES = {
    "01-ml-fundamentals": "l01",
    "02-neural-networks": "l02",
    "03-transformer-architecture": "l03",
    "04-llm-overview": "l04",
}


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {
            "name": "python3",
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        },
        "language_info": {"name": "python"},
    }
    for kind, text in cells:
        text = textwrap.dedent(text).strip("\n")
        if kind == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(text))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(text))
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:03d}"
    return nb


def main() -> None:
    import importlib

    only = set(sys.argv[1:])
    for name, module in NAMES.items():
        if only and not any(o in name for o in only):
            continue
        cells = importlib.import_module(module).CELLS
        folder = OUT / name
        folder.mkdir(parents=True, exist_ok=True)
        nb = build(cells)
        nbformat.validate(nb)
        nbformat.write(nb, folder / f"{name}.ipynb")
        print(f"wrote {folder / (name + '.ipynb')} ({len(nb.cells)} cells)")


if __name__ == "__main__":
    main()
