"""Does what is learned first transfer? Two small experiments behind the paper's premise, 3 seeds each.

Role in the flow: `python -m skillit_ray.benchmarks prerequisites | lego-from-base` -> **transfer_benchmark**
-> the efficiency benchmark's runner (`efficiency.execute_runs`: in-process runs, 2 at a time, one torch
thread each, resumable from `<out>/runs.jsonl`) -> printed figures (README results).

* `prerequisites`, the paper's section 2.2 on the staircase chain: a target skill trained alone
  against the same steps with its prerequisites in the mix (fixed proportions), the steps until the
  target's accuracy first reaches 90% and its final accuracy.
* `lego-from-base`: LEGO k = 5 as the paper runs it (its graph, eta, rounds, window) continued from a
  base saved by `skillit-ray pretrain` against the same runs from scratch, per strategy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from skillit_ray.benchmarks.efficiency import execute_runs, read_runs, run_job, summarize_setting
from skillit_ray.benchmarks.efficiency_settings import PAPER_LEGO, STAIRCASE, Setting, every_strategy

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
