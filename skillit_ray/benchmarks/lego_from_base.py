"""`lego-from-base`: LEGO as the paper runs it, from a base saved by `skillit-ray pretrain` vs from scratch.

Role in the flow: a benchmark (`python -m skillit_ray.benchmarks lego-from-base --base DIR`) over the
efficiency benchmark's runner. LEGO k = 5 with the paper's graph, eta, rounds and window, continued
from the base against the same runs from scratch, per strategy, 3 seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from skillit_ray.benchmarks.efficiency import execute_runs, read_runs, run_job, summarize_setting
from skillit_ray.benchmarks.efficiency_settings import PAPER_LEGO, Setting, every_strategy
from skillit_ray.benchmarks.prerequisites import SEEDS, add_run_arguments
from skillit_ray.benchmarks.registry import Benchmark


def lego_from_base(base: str, out: str, steps: int = 300, workers: int = 2) -> dict[str, Any]:
    """LEGO from the saved base and from scratch, per strategy: the efficiency benchmark's summary of each."""
    run = (*PAPER_LEGO, f"train.steps={steps}", f"train.eval_every_n_steps={max(1, steps // 6)}")
    strategies = {label: every_strategy("mixture.proportions=[1, 1, 1, 3, 5]")[label]
                  for label in ("skillit", "stratified", "random")}  # fmt: skip
    starts = {"lego_from_base": (f"model.pretrained_path={base}",), "lego_from_scratch": ()}
    jobs = [run_job(name, label, seed, [*run, *start, *overrides]) for name, start in starts.items()
            for label, overrides in strategies.items() for seed in SEEDS]  # fmt: skip
    Path(out).mkdir(parents=True, exist_ok=True)
    execute_runs(jobs, Path(out), workers)
    runs = read_runs(Path(out) / "runs.jsonl")
    result: dict[str, Any] = {"base": base, "steps": steps}
    for name in starts:
        setting = Setting(name, name, run, strategies, metric="mean_accuracy", needs_graph=())
        summary = summarize_setting(setting, [entry for entry in runs if entry["setting"] == name])
        result[name] = {label: {key: entry[key] for key in ("final_mean", "final_std", "per_skill_mean")}
                        for label, entry in summary.items()}  # fmt: skip
    return result


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    parser.add_argument("--base", default="runs/lookup-base", help="a `skillit-ray pretrain` output")


BENCHMARKS = [
    Benchmark(
        "lego-from-base",
        "LEGO from a pretrained base vs from scratch, per strategy",
        lambda arguments: lego_from_base(arguments.base, arguments.out, workers=arguments.workers),
        _arguments,
    )
]
