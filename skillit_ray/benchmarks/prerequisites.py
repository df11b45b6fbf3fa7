"""`prerequisites`: the paper's section 2.2 on the staircase chain, 3 seeds: does a prerequisite in the mix help?

Role in the flow: a benchmark (`python -m skillit_ray.benchmarks prerequisites`) over the efficiency
benchmark's runner (`efficiency.execute_runs`: in-process runs, 2 at a time, one torch thread each,
resumable from `<out>/runs.jsonl`). A target skill trained alone against the same steps with its
prerequisites in the mix (fixed proportions): the steps until the target's accuracy first reaches 90%
and its final accuracy.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from skillit_ray.benchmarks.efficiency import execute_runs, read_runs, run_job
from skillit_ray.benchmarks.efficiency_settings import STAIRCASE
from skillit_ray.benchmarks.registry import Benchmark

SEEDS = (0, 1, 2)
TARGET_ACCURACY = 0.9
PREREQUISITE_MIXES = {
    "staircase_2": {"alone": "[0, 1, 0, 0]", "with prerequisite": "[1, 1, 0, 0]"},
    "staircase_3": {"alone": "[0, 0, 1, 0]", "with prerequisites": "[1, 1, 1, 0]"},
}
"""Target skill -> mix label -> proportions over staircase_1..4."""


def prerequisites(out: str, steps: int = 800, eval_every: int = 40, workers: int = 2) -> dict[str, Any]:
    """Per target and mix: steps to `TARGET_ACCURACY` per seed (None: never) and final target accuracy."""
    base = [*STAIRCASE, f"train.steps={steps}", f"train.eval_every_n_steps={eval_every}", "mixture.num_rounds=1",
            "mixture.strategy=random"]  # fmt: skip
    jobs = [run_job(target, label, seed, [*base, f"mixture.proportions={proportions}"])
            for target, mixes in PREREQUISITE_MIXES.items() for label, proportions in mixes.items()
            for seed in SEEDS]  # fmt: skip
    Path(out).mkdir(parents=True, exist_ok=True)
    execute_runs(jobs, Path(out), workers)
    runs = read_runs(Path(out) / "runs.jsonl")
    result: dict[str, Any] = {"steps": steps, "target_accuracy": TARGET_ACCURACY, "targets": {}}
    for target, mixes in PREREQUISITE_MIXES.items():
        index = int(target.rsplit("_", 1)[1]) - 1
        for label in mixes:
            chosen = sorted((run for run in runs if run["setting"] == target and run["strategy"] == label),
                            key=lambda run: run["seed"])  # fmt: skip
            curves = [[accuracy[index] for accuracy in run["accuracy"]] for run in chosen]
            reached = [next((step for step, value in zip(run["steps"], curve) if value >= TARGET_ACCURACY), None)
                       for run, curve in zip(chosen, curves)]  # fmt: skip
            finals = np.asarray([curve[-1] for curve in curves])
            result["targets"].setdefault(target, {})[label] = {
                "steps_to_target": reached, "final_mean": float(finals.mean()), "final_std": float(finals.std(ddof=1)),
            }  # fmt: skip
    return result


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags both transfer experiments share."""
    parser.add_argument("--out", default="runs/transfer", help="runs.jsonl of the runs (resumable)")
    parser.add_argument("--workers", type=int, default=2, help="runs at a time (one thread each)")


BENCHMARKS = [
    Benchmark(
        "prerequisites",
        "a staircase skill alone vs with its prerequisites in the mix (paper section 2.2)",
        lambda arguments: prerequisites(arguments.out, workers=arguments.workers),
        add_run_arguments,
    )
]
