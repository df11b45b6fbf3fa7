"""Every strategy, source, skill family and benchmark is found in its folder, with unique names: adding one
is adding a module. Run: `.venv/bin/python -m pytest tests/test_registries.py`.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import skillit_ray.benchmarks as benchmarks_package
import skillit_ray.data.sources as sources_package
import skillit_ray.mixture.strategies as strategies_package
import skillit_ray.skills as skills_package
from skillit_ray.benchmarks.registry import benchmarks
from skillit_ray.data.sources.registry import sources
from skillit_ray.mixture.registry import option_sections, strategies
from skillit_ray.skills.registry import skill_generators

PAPER_STRATEGIES = {"skillit", "static", "no_graph", "stratified", "random", "target_only", "skill_curriculum",
                    "skill_anticurriculum", "curriculum", "anticurriculum"}  # fmt: skip
BENCHMARK_HELPERS = {"registry", "efficiency_settings", "efficiency_report"}
"""Modules of benchmarks/ that are parts of a benchmark, not one."""


def modules(package) -> set[str]:
    return {module.name for module in pkgutil.iter_modules(package.__path__)}


def test_every_strategy_module_registers_a_strategy_and_the_paper_is_complete():
    found = strategies()
    assert PAPER_STRATEGIES | {"aioli", "loss_proportional"} <= set(found)
    assert {cls.__module__.rsplit(".", 1)[1] for cls in found.values()} == modules(strategies_package)
    assert set(option_sections()) == {"aioli", "curriculum", "skill_curriculum", "loss_proportional"}


def test_every_source_module_serves_a_source_and_every_skill_family_is_one():
    found = sources()
    assert {"parquet", "table", "tokens", *skill_generators()} == set(found)
    assert {cls.__module__.rsplit(".", 1)[1] for cls in found.values()} == modules(sources_package) - {"registry"}
    families = {cls.__module__.rsplit(".", 1)[1] for cls in skill_generators().values()}
    assert families == modules(skills_package) - {"base", "registry", "tokenizer", "evaluate"}


def test_every_benchmark_module_registers_one_and_help_lists_them():
    found = benchmarks()
    registering = {benchmark.run.__module__.rsplit(".", 1)[1] for benchmark in found.values()}
    assert registering == modules(benchmarks_package) - BENCHMARK_HELPERS - {"__main__"}
    help_text = subprocess.run([sys.executable, "-m", "skillit_ray.benchmarks", "--help"], capture_output=True,
                               text=True, check=True, cwd=Path(__file__).resolve().parents[1]).stdout  # fmt: skip
    assert all(name in help_text for name in found)
