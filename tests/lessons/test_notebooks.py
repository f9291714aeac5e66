"""The four bundled lessons: stored without outputs, and each runs top to bottom on CPU.

Run with ``pytest tests/lessons -s`` to see each notebook's run time.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LESSONS = REPO / "src" / "mlworkshop" / "bundled" / "lessons"
NAMES = [
    "01-ml-fundamentals",
    "02-neural-networks",
    "03-transformer-architecture",
    "04-llm-overview",
]
CPU_LIMIT_S = 180  # the budget per notebook on a 2-core machine
# matplotlib: "Glyph 26426 (\N{CJK UNIFIED IDEOGRAPH-673A}) missing from font(s) DejaVu Sans."
# and its font-manager log line "findfont: Font family ... not found".
BAD_TEXT = re.compile(r"missing from (current )?font|Glyph \d+|findfont:|未找到中文字体")


def notebook_path(name: str) -> Path:
    return LESSONS / name / f"{name}.ipynb"


def test_the_four_lessons_are_there():
    found = sorted(p.name for p in LESSONS.iterdir() if p.is_dir())
    assert found == NAMES
    for name in NAMES:
        assert notebook_path(name).is_file()


@pytest.mark.parametrize("name", NAMES)
def test_stored_without_outputs(name):
    nb = json.loads(notebook_path(name).read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert nb["metadata"]["kernelspec"]["language"] == "python"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "a lesson with no code"
    for cell in code:
        assert cell["outputs"] == [], f"{name}: a code cell was stored with outputs"
        assert cell["execution_count"] is None, f"{name}: a code cell has an execution count"
    assert any(
        c["cell_type"] == "markdown" and re.search(r"[\u4e00-\u9fff]", "".join(c["source"]))
        for c in nb["cells"]
    ), "no Chinese text"


def _texts(nb):
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                yield cell, out.name, out.text
            elif out.output_type in ("execute_result", "display_data"):
                yield cell, "data", out.get("data", {}).get("text/plain", "")


@pytest.mark.lessons
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_on_cpu(name, tmp_path, monkeypatch, record_property):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("torch")

    # Execute a copy, so nothing is written into the repository.
    work = tmp_path / "content" / "lessons" / name
    shutil.copytree(LESSONS / name, work)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # no stray ~/datasets/mnist
    monkeypatch.setenv("MLWORKSHOP_DEVICE", "cpu")  # the CPU run, even on a GPU machine
    monkeypatch.delenv("MLWORKSHOP_DATASETS", raising=False)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")

    nb = nbformat.read(work / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(work)}},
    )
    start = time.monotonic()
    client.execute()  # raises CellExecutionError on the first error
    elapsed = time.monotonic() - start
    print(f"\n[lesson] {name}: {elapsed:.1f} s on CPU")
    record_property(f"{name}_seconds", round(elapsed, 1))

    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors
    bad = [(c.source[:60], stream, text) for c, stream, text in _texts(nb) if BAD_TEXT.search(text)]
    assert not bad, f"font warnings in {name}: {bad}"
    stderr = "".join(text for _, stream, text in _texts(nb) if stream == "stderr")
    if stderr.strip():
        print(f"[lesson] {name} stderr:\n{stderr}")
    printed = "".join(text for _, stream, text in _texts(nb) if stream == "stdout")
    assert "使用设备 / device: cpu" in printed, "the notebook must say which device it uses"
    assert "中文字体 / CJK font:" in printed, "the notebook must set up a Chinese font"
    images = sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert images >= 2, f"{name} drew {images} plots"
    assert elapsed < CPU_LIMIT_S, f"{name} took {elapsed:.0f} s on CPU (limit {CPU_LIMIT_S} s)"
    if name == "02-neural-networks":
        assert "load_digits" in printed  # no MNIST here: it must say it used the 8x8 digits
    # nothing was written next to the repository's notebook
    assert not list((LESSONS / name).glob("*.png")) and not list((LESSONS / name).glob("*.pt"))
