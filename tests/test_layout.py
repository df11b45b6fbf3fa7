"""Layout rules that keep the core pure: the math, graph, config and skill modules never import Ray.

Run: `.venv/bin/python -m pytest tests/test_layout.py`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "skillit_ray"
PURE_FOLDERS = ["config", "skills", "mixture", "graph", "data/prepare"]
PURE_MODULES = [str(path.relative_to(PACKAGE)) for folder in PURE_FOLDERS for path in (PACKAGE / folder).glob("*.py")]
PURE_MODULES += ["train/model.py", "train/preflight.py", "train/report.py", "data/storage.py"]
PURE_MODULES += ["discovery/clustering.py"]


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
