"""Layout rules that keep the core pure: the math, graph, config and skill modules never import Ray.

Run: `.venv/bin/python -m pytest tests/test_layout.py`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "skillit_ray"
PURE_MODULES = [
    "config.py",
    "mixture.py",
    "graph.py",
    "model.py",
    "preflight.py",
    "report.py",
    "prepare.py",
    "storage.py",
    "discovery.py",
]
PURE_MODULES += [f"skills/{path.name}" for path in (PACKAGE / "skills").glob("*.py")]


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_never_imports_ray(module):
    assert not [name for name in imported_modules(PACKAGE / module) if name == "ray" or name.startswith("ray.")]


def test_every_package_module_is_in_the_readme_tree():
    readme = (PACKAGE.parent / "README.md").read_text()
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name != "__init__.py":
            assert f"{path.name} " in readme, f"{path.relative_to(PACKAGE.parent)} is missing from the README tree"
