"""Driver-side run outputs: a progress line per round while training, and the run directory after.

Role in the flow: train (driver) -> **outputs** -> report. Reads the sampler actor's log (one record
per round and per evaluation) and writes `mixture.jsonl`, `metrics.jsonl`, `summary.json`,
`config.json` and the plots through `storage.RunStorage` (local or s3:// / gs://, atomic).
Other tools read these files, so their names and keys are a contract (see README).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np

from skillit_ray.config.job import JobConfig
from skillit_ray.data.source import SkillSetup
from skillit_ray.data.storage import RunStorage


class ProgressPrinter(threading.Thread):
    """Driver thread: one line per finished round, read from the sampler actor."""

    def __init__(self, sampler_actor, config: JobConfig, setup: SkillSetup, every_10_s=None) -> None:
        super().__init__(daemon=True)
        self.sampler_actor, self.config, self.setup = sampler_actor, config, setup
        self.every_10_s = every_10_s  # e.g. refreshing the run's lease
        self._stop_event = threading.Event()
        self._printed = 0

    def run(self) -> None:
        ticks = 0
        while not self._stop_event.wait(1.0):
            self.flush()
            ticks += 1
            if self.every_10_s is not None and ticks % 10 == 0:
                self.every_10_s()

    def flush(self) -> None:
        import ray

        try:
            rounds = ray.get(self.sampler_actor.records.remote())["rounds"]
        except Exception:  # actor gone at shutdown
            return
        for record in rounds[self._printed :]:
            line = (
                f"[{self.config.run.name}] round {record['round'] + 1}/{self.config.mixture.num_rounds} "
                f"step {record['step']}/{self.config.train.steps} {describe_weights(record['weights'])}"
            )
            if record["val_loss"]:
                line += f" mean val loss {np.mean(record['val_loss']):.4f}"
            if record["accuracy"]:
                line += f" mean acc {100 * np.mean(record['accuracy']):.1f}%"
            print(line, flush=True)
        self._printed = len(rounds)

    def stop(self) -> None:
        self._stop_event.set()
        self.flush()


MAX_PRINTED_WEIGHTS = 12
"""Up to this many skills the progress line lists every weight; above, their range (mixture.jsonl has all)."""


def describe_weights(weights: list[float]) -> str:
    if len(weights) <= MAX_PRINTED_WEIGHTS:
        return "weights [" + " ".join(f"{weight:.2f}" for weight in weights) + "]"
    return f"weights of {len(weights)} skills in [{min(weights):.3f}, {max(weights):.3f}]"


def write_run_outputs(
    storage: RunStorage, config: JobConfig, setup: SkillSetup, records: dict[str, Any], wall_s: float
) -> dict[str, Any]:
    """mixture.jsonl, metrics.jsonl, summary.json and the plots, written atomically."""
    throughput = [record for record in records["train"] if record["kind"] == "throughput"]
    train_lines = [record for record in records["train"] if record["kind"] == "train"]
    storage.write_text("mixture.jsonl", "".join(json.dumps(record) + "\n" for record in records["rounds"]))
    metric_lines = sorted(records["evaluations"] + train_lines, key=lambda record: (record["step"], record["kind"]))
    storage.write_text("metrics.jsonl", "".join(json.dumps(record) + "\n" for record in metric_lines))
    last = records["evaluations"][-1]
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
        "batch_waiting_s": throughput[-1].get("batch_waiting_s") if throughput else None,
        "wall_s": wall_s,
        "num_workers": config.scaling.num_workers,
        "seed": config.train.seed,
        "stopped": records.get("stopped"),
    }
    storage.write_text("summary.json", json.dumps(summary, indent=2) + "\n")
    storage.write_text("config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    from skillit_ray.train import report

    report.plot_mixture_weights(storage.uri(""))
    report.plot_validation_loss(storage.uri(""))
    return summary
