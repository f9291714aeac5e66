"""Layers (DESIGN.md): data flows down, nothing reaches back up. config, accounts, accelerators,
usage and names never import the hub or the CLI -- usage in particular is a separate process
(the usage service) that talks to the hub only through its REST API, so it must run without
JupyterHub's spawner code and its own config channel.

Read from the source (the AST of every module, imports inside functions included), not by
importing, so an import that only runs on some path is caught too; and followed through
mlworkshop's own modules, so going round through a helper module (usage -> site -> hub) is
caught as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mlworkshop

PACKAGE = Path(mlworkshop.__file__).parent
LOWER = ("config", "accounts", "accelerators", "usage", "names")
UPPER = ("mlworkshop.hub", "mlworkshop.cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import statement in the file, wherever it is."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from .. import hub` / `from . import service`: the names may be modules themselves
            found += [
                (node.lineno, f"{module}.{alias.name}")
                for alias in node.names
                if f"{module}.{alias.name}" in MODULES
            ]
    return found


def _is_upper(module: str) -> bool:
    return any(module == u or module.startswith(u + ".") for u in UPPER)


def _lower_modules() -> list[str]:
    return sorted(
        n
        for n in MODULES
        if any(n == f"mlworkshop.{p}" or n.startswith(f"mlworkshop.{p}.") for p in LOWER)
    )


def test_every_lower_package_is_found():
    found = _lower_modules()
    for package in LOWER:
        assert f"mlworkshop.{package}" in found
    assert "mlworkshop.usage.service" in found and "mlworkshop.usage.store" in found


@pytest.mark.parametrize("name", _lower_modules())
def test_never_imports_hub_or_cli(name):
    """Directly: no import statement of the module names mlworkshop.hub or mlworkshop.cli."""
    bad = [
        f"line {line}: {module}"
        for line, module in _imports(name, MODULES[name])
        if _is_upper(module)
    ]
    assert not bad, f"{name} imports the hub or the CLI: {bad}"


def test_nothing_below_reaches_the_hub_or_cli_through_another_module():
    """Transitively, through mlworkshop's own modules (site.py, db.py, cgroups.py, ...)."""
    graph = {
        name: {m for _line, m in _imports(name, path) if m.startswith("mlworkshop")}
        for name, path in MODULES.items()
    }
    for start in _lower_modules():
        seen, todo, parent = {start}, [start], {start: ""}
        while todo:
            current = todo.pop()
            for module in graph.get(current, ()):
                # importing a.b.c runs a/__init__ and a/b/__init__ too
                parts = module.split(".")
                for i in range(2, len(parts) + 1):
                    step = ".".join(parts[:i])
                    if step in seen or step not in MODULES:
                        continue
                    seen.add(step)
                    parent[step] = current
                    todo.append(step)
        reached = sorted(m for m in seen if _is_upper(m))
        if reached:
            chain, node = [], reached[0]
            while node:
                chain.append(node)
                node = parent[node]
            pytest.fail(f"{start} reaches {reached[0]}: {' <- '.join(chain)}")


def test_the_usage_service_process_loads_nothing_of_the_hub():
    """What `python -m mlworkshop.usage.service` loads before it serves: none of the hub's or the
    CLI's modules (nor JupyterHub's, which only the hub process needs)."""
    import subprocess
    import sys

    code = (
        "import sys, mlworkshop.usage.service, mlworkshop.usage.app; "
        "print(' '.join(m for m in sys.modules if m.split('.')[0] == 'jupyterhub' "
        "or m.startswith(('mlworkshop.hub', 'mlworkshop.cli'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []
