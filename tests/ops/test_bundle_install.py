"""ops/bundle_install.py's checks, on small bundles written by ops/bundle.py's own manifest code:
a bundle for another Python or architecture, a missing or corrupt file, a manifest that names a
path outside the bundle: each is refused with a sentence, before anything is created."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlworkshop.ops import bundle_install as bi
from mlworkshop.ops.bundle import REPO, write_manifest


@pytest.fixture
def bundle(tmp_path) -> Path:
    """A bundle's shape with tiny files (the real wheels are tests/ops/test_bundle.py's)."""
    out = tmp_path / "bundle"
    (out / bi.WHEELS).mkdir(parents=True)
    (out / bi.WHEELS / "demo-1.0-py3-none-any.whl").write_bytes(b"not really a wheel" * 100)
    (out / bi.NPM).mkdir()
    shutil.copy2(REPO / "package-lock.json", out / bi.NPM / "package-lock.json")
    (out / bi.REQUIREMENTS).write_text("demo==1.0\n")
    write_manifest(out, bi.Target.here(), [], ["demo==1.0"])
    return out


@pytest.fixture
def checkout(tmp_path) -> Path:
    """An empty stand-in for a clone: the install must not create anything in it."""
    project = tmp_path / "checkout"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'mlworkshop'\n")
    return project


def _retarget(bundle: Path, **changes) -> None:
    manifest = json.loads((bundle / bi.MANIFEST).read_text())
    manifest["target"].update(changes)
    (bundle / bi.MANIFEST).write_text(json.dumps(manifest))


def _install_cli(bundle: Path, project: Path) -> subprocess.CompletedProcess:
    """As `make up BUNDLE=...` runs it: the module with src/ on PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mlworkshop.ops.bundle_install",
            str(bundle),
            "--project",
            str(project),
        ],
        env=env,
        capture_output=True,
        text=True,
    )


def test_an_intact_bundle_verifies(bundle):
    manifest = bi.verify(bundle)
    assert manifest["target"] == bi.Target.here().__dict__
    assert set(manifest["files"]) == {
        "wheels/demo-1.0-py3-none-any.whl",
        "npm/package-lock.json",
        "requirements.txt",
    }


def test_a_corrupt_file_is_named_and_nothing_is_installed(bundle, checkout):
    wheel = bundle / bi.WHEELS / "demo-1.0-py3-none-any.whl"
    data = bytearray(wheel.read_bytes())
    data[10] ^= 0xFF  # same size, one byte flipped
    wheel.write_bytes(bytes(data))
    result = _install_cli(bundle, checkout)
    assert result.returncode == 2, result
    assert "corrupt" in result.stderr and "demo-1.0-py3-none-any.whl" in result.stderr
    assert "nothing was installed" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in checkout.iterdir()) == ["pyproject.toml"]


def test_a_missing_file_is_named(bundle, checkout):
    (bundle / bi.REQUIREMENTS).unlink()
    result = _install_cli(bundle, checkout)
    assert result.returncode == 2
    assert "1 file(s) missing: requirements.txt" in result.stderr
    assert not (checkout / ".venv").exists()


def test_a_bundle_for_another_python_is_refused(bundle, checkout):
    _retarget(bundle, python="3.9")
    result = _install_cli(bundle, checkout)
    assert result.returncode == 2
    here = bi.Target.here()
    assert f"made for cpython 3.9 on {here.machine}" in result.stderr
    assert f"this machine has {here.describe()}" in result.stderr
    assert "Traceback" not in result.stderr and not (checkout / ".venv").exists()


def test_a_bundle_for_another_architecture_is_refused(bundle, checkout):
    other = "aarch64" if bi.Target.here().machine != "aarch64" else "x86_64"
    _retarget(bundle, machine=other)
    with pytest.raises(bi.BundleError, match=f"made for .* on {other}"):
        bi.install(bundle, checkout, say=lambda _: None)
    assert not (checkout / ".venv").exists()


def test_a_folder_without_manifest_is_not_a_bundle(tmp_path, checkout):
    (tmp_path / "empty").mkdir()
    result = _install_cli(tmp_path / "empty", checkout)
    assert result.returncode == 2 and "has no manifest.json" in result.stderr


def test_a_manifest_naming_a_path_outside_is_refused(bundle):
    manifest = json.loads((bundle / bi.MANIFEST).read_text())
    manifest["files"]["../outside"] = {"sha256": "0" * 64, "size": 1}
    (bundle / bi.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(bi.BundleError, match="outside the bundle"):
        bi.verify(bundle)


def test_the_installer_imports_only_the_standard_library():
    """It runs before the venv exists (`make up BUNDLE=...` with the system's python3)."""
    code = (
        "import sys; before = set(sys.modules); import mlworkshop.ops.bundle_install; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "print(sorted(m for m in new if m not in sys.stdlib_module_names))"
    )
    out = subprocess.run(
        [
            "/usr/bin/python3",
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(REPO / 'src')!r}); {code}",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['mlworkshop']"
