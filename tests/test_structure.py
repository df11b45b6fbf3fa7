"""The house keeps its shape: imports flow one way through the stages, the pure stages import no Ray,
no module hands on names it does not define, and modules and functions stay small.

Stages in flow order: config -> skills, data -> graph, mixture -> train -> tune, discovery -> cli,
benchmarks. Every import counts (module level, inside functions, under `if TYPE_CHECKING:`).
Run: `.venv/bin/python -m pytest tests/test_structure.py`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "skillit_ray"
STAGES = {
    "config": 0,
    "skills": 1,
    "data": 1,
    "graph": 2,
    "mixture": 2,
    "train": 3,
    "tune": 4,
    "discovery": 4,
    "cli": 5,
    "benchmarks": 5,
}
PURE = ("config", "skills", "graph", "mixture", "data/prepare")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
MAX_LOOP_BODY_LINES = 60
LOOP_BODIES = {
    "train/loop.py": ["training_loop", "TrainingRun.step"],
    "train/evaluation.py": ["EvaluationPoint.run"],
    "train/plans.py": ["Rounds._start_round", "Rounds.close"],
}
"""The per-step and per-round bodies of the training loop."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def stage(module: str) -> int | None:
    parts = module.split(".")
    return STAGES.get(parts[1]) if len(parts) > 1 else None


def imports(path: Path) -> set[str]:
    """Every package module `path` imports, anywhere in it (a `from package import module` names the module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in MODULES} - {module_name(path)}


GRAPH = {name: imports(path) for name, path in MODULES.items()}


def test_no_stage_imports_a_later_stage():
    backwards = [
        f"{source} (stage {stage(source)}) imports {target} (stage {stage(target)})"
        for source, targets in GRAPH.items()
        for target in targets
        if stage(source) is not None and stage(target) is not None and stage(target) > stage(source)
    ]
    assert not backwards


def test_nothing_outside_the_benchmarks_imports_them():
    found = [
        f"{source} imports {target}"
        for source, targets in GRAPH.items()
        for target in targets
        if target.startswith("skillit_ray.benchmarks") and not source.startswith("skillit_ray.benchmarks")
    ]
    assert not found


def test_imports_form_no_cycle():
    visiting, done, cycles = set(), set(), []

    def visit(node: str, trail: list[str]) -> None:
        if node in done:
            return
        if node in visiting:
            cycles.append(trail[trail.index(node) :])
            return
        visiting.add(node)
        for target in sorted(GRAPH[node]):
            visit(target, trail + [target])
        visiting.discard(node)
        done.add(node)

    for name in sorted(GRAPH):
        visit(name, [name])
    assert not cycles


@pytest.mark.parametrize("folder", PURE)
def test_pure_stages_import_no_ray(folder):
    for path in (PACKAGE / folder).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not [name for name in names if name == "ray" or name.startswith("ray.")], path


def test_no_module_hands_on_names_defined_elsewhere():
    for name, path in MODULES.items():
        text = path.read_text()
        tree = ast.parse(text)
        assert "noqa: F401" not in text, f"{name} keeps an unused import to re-export it"
        assert "TYPE_CHECKING" not in text, f"{name} imports under TYPE_CHECKING: import where the flow allows it"
        if path.name == "__init__.py":
            statements = [node for node in tree.body if not isinstance(node, ast.Expr | ast.ImportFrom)]
            assert all(isinstance(node, ast.Assign) for node in statements), f"{name} defines more than its docstring"
            assert not [node for node in tree.body if isinstance(node, ast.ImportFrom) and node.module != "__future__"]
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
                pytest.fail(f"{name} has an __all__: import a name from the module that defines it")


def test_no_module_longer_than_400_lines():
    lengths = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert not {name: length for name, length in lengths.items() if length > MAX_MODULE_LINES}


def _functions(tree: ast.AST, prefix: str = ""):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield prefix + node.name, node
            yield from _functions(node, prefix + node.name + ".")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, prefix + node.name + ".")


def test_no_function_longer_than_80_lines():
    long_functions = []
    for name, path in MODULES.items():
        for qualified, node in _functions(ast.parse(path.read_text())):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                long_functions.append(f"{name}.{qualified} ({length} lines)")
    assert not long_functions


@pytest.mark.parametrize("module, functions", list(LOOP_BODIES.items()))
def test_the_loop_reads_as_one_page(module, functions):
    defined = dict(_functions(ast.parse((PACKAGE / module).read_text())))
    for function in functions:
        node = defined[function]
        assert node.end_lineno - node.lineno + 1 <= MAX_LOOP_BODY_LINES, f"{module}:{function}"


def test_the_loop_imports_no_fault_injection():
    assert "skillit_ray.train.faults" not in GRAPH["skillit_ray.train.loop"]
