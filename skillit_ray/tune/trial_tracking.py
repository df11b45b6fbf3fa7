"""Every trial of the Tune phases (the graph's short runs, the eta search) in the trackers of `tracking.sinks`.

Role in the flow: graph runs / search (their Tune fits) -> reporter (`progress.py`, on the driver after each
trial) -> **trial tracking** -> MLflow, TensorBoard, W&B. The phase's driver logs each finished trial from
its Tune result, in the same metric names as a training run (`train/tracking.py`):

    MLflow       a parent run per phase in `tracking.experiment`, named <run.name>-graph or <run.name>-tune
                 (tag skillit.phase), the config as params; at the end the phase's files as artifacts
                 (graph.json, graph.npy, graph_heatmap.png; best_config.yaml, candidates.json, trials.json)
                 and it ends FINISHED or FAILED. Under it a child run per trial (tag mlflow.parentRunId):
                 its setting as params, its results as metrics, FINISHED, KILLED (stopped early) or FAILED
    TensorBoard  a run per trial: <run dir>/<phase>/tensorboard/<trial>, its metrics as scalars and its
                 setting with its final metrics in the HParams tab
    W&B          a run per trial (offline by default) in `tracking.wandb_project`, grouped as
                 <run.name>-<phase> with the phase as job type; files under <run dir>/<phase>/wandb

A graph trial batches short runs (`graph.runs_per_trial`): each short run is one tracked trial, named by its
run id (only_<skill>, pair_<a>__<b>), its mixture as params (`proportion/<skill>`), every evaluation skill's
validation loss at step 0, graph.measure_at_step and graph.steps as `eval/val_loss/<skill>` and
`eval/mean_val_loss`, and `graph/loss_drop/<skill>` (before minus at the measured step). A search trial
is named by its setting (skillit(eta=0.3, rounds=2, window=3), stratified), with strategy, eta, num_rounds,
window, seeds and the fit (search, edge, baselines) as params; ASHA's intermediate objectives as
`objective` at their steps, and at train.steps `objective` (the mean over `tune.seeds`),
`objective/seed_<seed>`, and the final `eval/val_loss/<skill>`, `eval/mean_val_loss` (accuracies too for
synthetic skills), averaged over the seeds. Phases start anew: a re-run is a new parent run. No Ray import.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skillit_ray.config.job import JobConfig
from skillit_ray.data.storage import RunStorage
from skillit_ray.train import trackers
from skillit_ray.train.tracking import (
    MLFLOW_MAX_PARAM_LENGTH,
    MLFLOW_MAX_PARAMS_PER_BATCH,
    create_mlflow_run,
    safe_name,
)

MLFLOW_PARENT_TAG = "mlflow.parentRunId"
"""The tag that nests an MLflow run under another in the UI (`mlflow.start_run(nested=True)` sets it)."""
_UNSAFE_DIRECTORY_CHARACTERS = re.compile(r"[^0-9A-Za-z_.=-]+")


@dataclass
class TrialRecord:
    """One tracked trial: its name, setting and results (`metrics` at `step`, earlier results in `history`)."""

    name: str
    params: dict[str, Any]
    metrics: dict[str, float]
    step: int
    history: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    status: str = "FINISHED"
    """FINISHED, KILLED (stopped early by the scheduler) or FAILED."""
    headline: str = ""
    """The trial's result in a few words, for the progress line."""


def graph_trial_records(
    config: JobConfig, skills: tuple[list[str], list[str]], trial_config: dict, results: list[dict], error: str
) -> list[TrialRecord]:
    """The short runs of one graph trial, each a record: its mixture, and its losses before, at the measured
    step and at the end (none for a failed trial)."""
    (train_skills, eval_skills), measure_step, steps = skills, config.graph.measure_step(), config.graph.steps
    measured = results[-1].get("measurements", {}) if results and not error else {}
    records = []
    for spec in trial_config["specs"]:
        params = {f"proportion/{safe_name(skill)}": weight
                  for skill, weight in zip(train_skills, spec["proportions"])}  # fmt: skip
        params.update({"graph.steps": steps, "graph.measure_at_step": measure_step})
        losses = measured.get(spec["run_id"])
        if losses is None:
            records.append(TrialRecord(spec["run_id"], params, {}, steps, status="FAILED", headline=f"failed: {error}"))
            continue
        history = [(0, _loss_metrics(eval_skills, losses["initial_losses"]))]
        after = _loss_metrics(eval_skills, losses["losses_after"])
        drops = np.asarray(losses["initial_losses"]) - np.asarray(losses["losses_after"])
        final = {f"graph/loss_drop/{safe_name(skill)}": float(drop) for skill, drop in zip(eval_skills, drops)}
        if measure_step == steps:
            final.update(after)
        else:
            history.append((measure_step, after))
            final.update(_loss_metrics(eval_skills, losses["final_losses"]))
        headline = (f"{spec['run_id']}: mean val loss {history[0][1]['eval/mean_val_loss']:.4f} -> "
                    f"{after['eval/mean_val_loss']:.4f} at step {measure_step}")  # fmt: skip
        records.append(TrialRecord(spec["run_id"], params, final, steps, history, headline=headline))
    return records


def search_trial_record(
    config: JobConfig, eval_skills: list[str], fit: str, trial_config: dict, results: list[dict], error: str
) -> list[TrialRecord]:
    """One trial of the search (a Skill-it setting or a baseline, every seed in it) as a record."""
    setting = trial_config.get("setting") or {name: trial_config[name] for name in ("eta", "num_rounds", "window")}
    strategy = setting.get("strategy", "skillit")
    name = describe_setting(setting)
    params = {"strategy": strategy, **{key: value for key, value in setting.items() if key != "strategy"},
              "seeds": ",".join(str(seed) for seed in config.tune.seeds), "fit": fit}  # fmt: skip
    steps = config.train.steps
    final = results[-1] if results and results[-1].get("final") else None
    last_step = steps - 1 if final else steps  # the final result stands for the report at the last step
    history = [(int(result["step"]), {"objective": float(result["objective"])}) for result in results
               if not result.get("final") and "step" in result and result["step"] <= last_step]  # fmt: skip
    if error:
        return [TrialRecord(name, params, {}, steps, history, status="FAILED", headline=f"{name}: failed: {error}")]
    if final is None:  # stopped by ASHA: its last intermediate objective is its result
        last = f" ({config.tune.metric} {history[-1][1]['objective']:.4f} at step {history[-1][0]})" if history else ""
        return [TrialRecord(name, params, {}, steps, history, status="KILLED", headline=f"{name}: stopped early{last}")]
    metrics = {"objective": float(final["objective"])}
    seeds = zip(config.tune.seeds, final["per_seed"])
    metrics.update({f"objective/seed_{seed}": float(value) for seed, value in seeds})
    if final.get("val_loss"):
        metrics.update(_loss_metrics(eval_skills, final["val_loss"]))
    if final.get("accuracy"):
        metrics.update({f"eval/accuracy/{safe_name(skill)}": float(value)
                        for skill, value in zip(eval_skills, final["accuracy"])})  # fmt: skip
        metrics["eval/mean_accuracy"] = float(np.mean(final["accuracy"]))
    return [TrialRecord(name, params, metrics, steps, history,
                        headline=f"{name}: {config.tune.metric} {final['objective']:.4f}")]  # fmt: skip


def describe_setting(setting: dict[str, Any]) -> str:
    """skillit(eta=0.3, rounds=2, window=3), or a baseline's strategy name."""
    if setting.get("strategy", "skillit") != "skillit":
        return str(setting["strategy"])
    return f"skillit(eta={setting['eta']:g}, rounds={setting['num_rounds']}, window={setting['window']})"


def _loss_metrics(eval_skills: list[str], losses) -> dict[str, float]:
    values = {f"eval/val_loss/{safe_name(skill)}": float(loss) for skill, loss in zip(eval_skills, losses)}
    values["eval/mean_val_loss"] = float(np.mean(losses))
    return values


def directory_name(name: str) -> str:
    """A trial name as a directory name: skillit(eta=0.3, rounds=2, window=3) -> skillit_eta=0.3_rounds=2_window=3."""
    return _UNSAFE_DIRECTORY_CHARACTERS.sub("_", name).strip("_") or "trial"


class PhaseTrackers:
    """The trackers of one Tune phase ("graph" or "tune"): opened before its first fit, a trial at a time, then
    `finish` with the phase's files. Holds only plain values (Ray Tune pickles its callbacks with the run config)."""

    def __init__(self, config: JobConfig, phase: str) -> None:
        self.config, self.phase = config, phase
        self.sinks = config.tracking.trackers()
        storage = RunStorage(config.run.storage_path, config.run.name)
        self.directory = str(storage.local_path() / phase) if {"tensorboard", "wandb"} & set(self.sinks) else ""
        self.mlflow: dict[str, str] = {}
        if "mlflow" in self.sinks:
            uri = config.tracking.resolved_mlflow_uri(config.run.storage_path)
            name, tags = f"{config.run.name}-{phase}", {"skillit.phase": phase}
            self.mlflow = create_mlflow_run(config, uri, storage, name, tags)
        self.names: set[str] = set()

    def log_trial(self, record: TrialRecord) -> None:
        """One finished (or failed) trial to every tracker."""
        name = record.name if record.name not in self.names else f"{record.name}-{len(self.names)}"
        self.names.add(name)
        if "mlflow" in self.sinks:
            self._mlflow_trial(name, record)
        if "tensorboard" in self.sinks:
            self._tensorboard_trial(Path(self.directory) / "tensorboard" / directory_name(name), record)
        if "wandb" in self.sinks:
            self._wandb_trial(name, record)

    def finish(
        self,
        files: list[str],
        failed: bool,
        params: dict[str, str] | None = None,
        metrics: dict[str, float] | None = None,
    ) -> None:
        """The phase's files, its choice (`params`) and totals (`metrics`) on the MLflow parent run, which ends
        FINISHED or FAILED."""
        if not self.mlflow:
            return
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        client, timestamp_ms = MlflowClient(self.mlflow["tracking_uri"]), int(time.time() * 1000)
        values = [Param(key, str(value)[:MLFLOW_MAX_PARAM_LENGTH]) for key, value in (params or {}).items()]
        totals = [Metric(key, float(value), timestamp_ms, 0) for key, value in (metrics or {}).items()]
        if values or totals:
            client.log_batch(self.mlflow["run_id"], params=values[:MLFLOW_MAX_PARAMS_PER_BATCH], metrics=totals)
        for path in files:
            if Path(path).is_file():
                client.log_artifact(self.mlflow["run_id"], path)
        client.set_terminated(self.mlflow["run_id"], "FAILED" if failed else "FINISHED")

    def _mlflow_trial(self, name: str, record: TrialRecord) -> None:
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        client, timestamp_ms = MlflowClient(self.mlflow["tracking_uri"]), int(time.time() * 1000)
        tags = {MLFLOW_PARENT_TAG: self.mlflow["run_id"], "skillit.phase": self.phase}
        run_id = client.create_run(self.mlflow["experiment_id"], run_name=name, tags=tags).info.run_id
        params = [Param(key, str(value)[:MLFLOW_MAX_PARAM_LENGTH]) for key, value in record.params.items()]
        for start in range(0, len(params), MLFLOW_MAX_PARAMS_PER_BATCH):
            client.log_batch(run_id, params=params[start : start + MLFLOW_MAX_PARAMS_PER_BATCH])
        metrics = [Metric(key, value, timestamp_ms, step) for step, values in _steps(record)
                   for key, value in values.items()]  # fmt: skip
        for start in range(0, len(metrics), trackers.MLFLOW_MAX_METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=metrics[start : start + trackers.MLFLOW_MAX_METRICS_PER_BATCH])
        client.set_terminated(run_id, record.status)

    @staticmethod
    def _tensorboard_trial(log_dir: Path, record: TrialRecord) -> None:
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(log_dir=str(log_dir)) as writer:
            for step, values in _steps(record):
                for key, value in values.items():
                    writer.add_scalar(key, value, global_step=step)
            hparams = {key: value if isinstance(value, int | float | str | bool) else str(value)
                       for key, value in record.params.items()}  # fmt: skip
            final = {f"hparams/{key}": value for key, value in record.metrics.items()}
            writer.add_hparams(hparams, final, run_name=".", global_step=record.step)

    def _wandb_trial(self, name: str, record: TrialRecord) -> None:
        tracking, run_name = self.config.tracking, self.config.run.name
        Path(self.directory).mkdir(parents=True, exist_ok=True)
        run = trackers.init_wandb_run(
            self.directory, uuid.uuid4().hex[:12], tracking.wandb_project, tracking.wandb_mode, name, record.params,
            group=f"{run_name}-{self.phase}", job_type=self.phase,
        )  # fmt: skip
        for step, values in _steps(record):
            run.log(values, step=step)
        run.summary.update({"status": record.status})
        run.finish(exit_code=1 if record.status == "FAILED" else 0)


def _steps(record: TrialRecord) -> list[tuple[int, dict[str, float]]]:
    """The record's (step, metrics) in step order, the final metrics last."""
    return [*record.history, *([(record.step, record.metrics)] if record.metrics else [])]
