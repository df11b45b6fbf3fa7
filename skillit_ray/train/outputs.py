"""The run directory's summary after training: summary.json, config.json and the plots.

Role in the flow: launch (the driver, after `fit()`) -> **outputs** -> report. Rank 0 wrote the records
as it trained (`mixture.jsonl`, `metrics.jsonl`, `metrics.py`); the driver reads them back through
storage (local or s3:// / gs://) and writes the rest, atomically. Other tools read these files, so
their names and keys are a contract (docs/own-data.md).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from skillit_ray.config.job import JobConfig
from skillit_ray.data.source import SkillSetup
from skillit_ray.data.storage import RunStorage
from skillit_ray.train import report
from skillit_ray.train.metrics import METRICS_FILE, read_jsonl


def write_run_outputs(
    storage: RunStorage, config: JobConfig, setup: SkillSetup, wall_s: float, stopped: str | None
) -> dict[str, Any]:
    """summary.json (the last evaluation, the throughput, the run's shape), config.json and the plots."""
    metrics = read_jsonl(storage, METRICS_FILE)
    evaluations = [record for record in metrics if record["kind"] == "eval"]
    throughput = [record for record in metrics if record["kind"] == "throughput"]
    last = evaluations[-1]
    summary = {
        "name": config.run.name,
        "strategy": config.mixture.strategy,
        "setting": config.mixture.setting,
        "steps": config.train.steps,
        "skills": setup.train_skills,
        "eval_skills": setup.eval_skills,
        "per_skill_val_loss": last["val_loss"],
        "per_skill_accuracy": last["accuracy"],
        "mean_val_loss": float(np.mean(last["val_loss"])),
        "mean_accuracy": float(np.mean(last["accuracy"])) if last["accuracy"] is not None else None,
        "tokens_per_s": throughput[-1]["tokens_per_s"] if throughput else None,
        "train_step_s": throughput[-1]["train_step_s"] if throughput else None,
        "batch_assembly_s": throughput[-1]["batch_assembly_s"] if throughput else None,
        "batch_waiting_s": throughput[-1]["batch_waiting_s"] if throughput else None,
        "wall_s": wall_s,
        "num_workers": config.scaling.num_workers,
        "seed": config.train.seed,
        "stopped": stopped,
    }
    storage.write_text("summary.json", json.dumps(summary, indent=2) + "\n")
    storage.write_text("config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    report.plot_mixture_weights(storage.uri(""))
    report.plot_validation_loss(storage.uri(""))
    return summary
