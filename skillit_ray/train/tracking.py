"""Experiment tracking: rank 0's metrics sink for the run's jsonl files and the trackers of `tracking.sinks`.

Role in the flow: launch (driver: `open_tracker_runs` before Ray starts, `finish_tracker_runs` after the
run's outputs; rank 0: `tracking_sink`) -> **tracking** -> metrics (`JsonlSink`) and trackers
(`trackers.py`: MLflow, TensorBoard, W&B). The loop still sees one `MetricsSink`.

`TrackingSink` writes every record to the `JsonlSink` in line (the run's record, restored with each
checkpoint), and on one thread to the progress file (`progress.json`: the newest training record, read
by the driver's progress line) and to the trackers, which follow the jsonl records in batches: every
`TRACKER_BATCH_S` and at the end. The training thread never waits for a tracker (an MLflow SQLite commit,
a server round trip) except on restore and close; a tracker's error is raised at its next write or flush.
On restore the trackers catch up from the jsonl records up to the checkpoint, so what a crash kept
from them is complete, and none logs a step twice (`trackers.py`).

Metric names, the same in every tracker (skill names with characters MLflow refuses get "_"):

    train       train/loss, train/learning_rate, train/tokens_per_s, train/tokens_seen
    eval        eval/val_loss/<skill>, eval/accuracy/<skill> (synthetic skills), eval/mean_val_loss,
                eval/mean_accuracy
    round       mixture/round, mixture/weight/<skill>, mixture/achieved_share/<skill>
    throughput  throughput/tokens_per_s, throughput/train_step_s, throughput/batch_assembly_s,
                throughput/batch_waiting_s

The trackers' run ids live in the run directory's `tracking.json`, so a resumed run (a retry, a re-run
of the same run.name) continues the same tracker runs instead of starting new ones. No Ray import.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from skillit_ray.config.job import JobConfig
from skillit_ray.config.loading import as_mapping
from skillit_ray.data.source import SkillSetup
from skillit_ray.data.storage import RunStorage
from skillit_ray.train import trackers
from skillit_ray.train.metrics import METRICS_FILE, MIXTURE_FILE, JsonlSink

TRACKING_FILE = "tracking.json"
PROGRESS_FILE = "progress.json"
RUN_ARTIFACTS = ("config.json", "summary.json", MIXTURE_FILE, METRICS_FILE, "mixture_weights.png", "val_loss.png")
"""Files of the run directory logged to the trackers at the end (those that exist)."""
MLFLOW_MAX_PARAM_LENGTH = 500
"""Config values longer than this are cut in MLflow's params (config.json, an artifact, has them whole)."""
MLFLOW_MAX_PARAMS_PER_BATCH = 100
TRACKER_BATCH_S = 5.0
"""The trackers get the pending records this often (and at the end): one MLflow batch per 5 s instead
of one per record keeps their Python work, which holds the GIL the training thread needs, small."""
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^0-9A-Za-z_\-. :/]")
logger = logging.getLogger("skillit_ray")


def metric_values(record: dict[str, Any], train_skills: list[str], eval_skills: list[str]) -> dict[str, float]:
    """The metrics of one record, named as every tracker shows them (see the module docstring)."""
    kind = record["kind"]
    if kind == "train":
        values = {"train/loss": record["train_loss"], "train/learning_rate": record["learning_rate"],
                  "train/tokens_per_s": record["tokens_per_s"]}  # fmt: skip
        if "tokens_seen" in record:
            values["train/tokens_seen"] = record["tokens_seen"]
    elif kind == "eval":
        values = _per_skill("eval/val_loss", eval_skills, record["val_loss"])
        values["eval/mean_val_loss"] = float(np.mean(record["val_loss"]))
        if record.get("accuracy") is not None:
            values.update(_per_skill("eval/accuracy", eval_skills, record["accuracy"]))
            values["eval/mean_accuracy"] = float(np.mean(record["accuracy"]))
    elif kind == "round":
        counts = np.asarray(record["achieved_counts"], dtype=np.float64)
        shares = counts / counts.sum() if counts.sum() > 0 else counts
        values = {"mixture/round": record["round"], **_per_skill("mixture/weight", train_skills, record["weights"]),
                  **_per_skill("mixture/achieved_share", train_skills, shares)}  # fmt: skip
    else:
        keys = ("tokens_per_s", "train_step_s", "batch_assembly_s", "batch_waiting_s")
        values = {f"throughput/{key}": record[key] for key in keys if key in record}
    return {key: float(value) for key, value in values.items()}


def _per_skill(prefix: str, skills: list[str], values) -> dict[str, float]:
    return {f"{prefix}/{safe_name(skill)}": float(value) for skill, value in zip(skills, values)}


def safe_name(skill: str) -> str:
    """A skill name as part of a metric name: characters MLflow refuses become "_"."""
    return _UNSAFE_NAME_CHARACTERS.sub("_", skill)


class TrackingSink:
    """Rank 0's sink: the run's jsonl files in line; the progress file and the trackers on one thread."""

    def __init__(self, jsonl: JsonlSink, tracker_list: list, setup: SkillSetup) -> None:
        self.jsonl, self.trackers, self.setup = jsonl, tracker_list, setup
        self.storage = jsonl.storage
        self.queue: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.thread_cpu_s = 0.0
        """CPU time of the tracking thread (its Python holds the GIL the training thread needs)."""
        self.waited_s = 0.0
        """Time the training thread waited for the tracking thread (restore, close)."""
        self.thread = threading.Thread(target=self._work, name="skillit-tracking", daemon=True)
        self.thread.start()

    def write(self, record: dict[str, Any]) -> None:
        self.jsonl.write(record)
        self._raise_tracker_error()
        self.queue.put(("write", dict(record)))

    def restore(self, step: int) -> None:
        """The jsonl records up to `step`, and the trackers caught up with them."""
        self.jsonl.restore(step)
        written = [{"kind": "round", **record} for record in self.jsonl.rounds] + self.jsonl.metrics
        order = {"train": 0, "eval": 1, "round": 2, "throughput": 3}  # a step's records in the loop's order
        self._call("restore", (step, sorted(written, key=lambda record: (record["step"], order[record["kind"]]))))

    def flush(self) -> None:
        """The jsonl files now; the trackers follow within `TRACKER_BATCH_S` (restore catches them up)."""
        self.jsonl.flush()
        self._raise_tracker_error()

    def close(self) -> None:
        try:
            self._call("close", None)
        finally:
            self.queue.put(None)
            self.thread.join()

    def _call(self, method: str, argument) -> None:
        """Run `method` on every tracker after what is queued, and wait for it."""
        started = time.perf_counter()
        self.queue.put((method, argument))
        self.queue.join()
        self.waited_s += time.perf_counter() - started
        self._raise_tracker_error()

    def _raise_tracker_error(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise RuntimeError(f"experiment tracking failed: {type(error).__name__}: {error}") from error

    def _work(self) -> None:
        pending: list[dict[str, Any]] = []  # records not yet handed to the trackers
        last_dispatch_s = time.monotonic()
        while True:
            wait_s = last_dispatch_s + TRACKER_BATCH_S - time.monotonic()
            try:
                item, from_queue = self.queue.get(timeout=max(wait_s, 0.0)) if pending else self.queue.get(), True
            except queue.Empty:
                item, from_queue = ("dispatch", None), False
            try:
                if item is None:
                    return
                method, argument = item
                if self.error is not None:  # after an error, drain without logging until it is raised
                    pending.clear()
                elif method == "write":
                    pending.append(argument)
                    if argument["kind"] == "train":
                        self.storage.write_text(PROGRESS_FILE, json.dumps(argument) + "\n")
                elif method == "restore":
                    step, written = argument
                    entries = self._entries(written)
                    for tracker in self.trackers:
                        tracker.restore(step, entries)
                else:
                    self._dispatch(pending)
                    last_dispatch_s = time.monotonic()
                    if method == "close":
                        for tracker in self.trackers:
                            tracker.close()
            except BaseException as error:  # raised in the training thread at its next call
                self.error = error
            finally:
                self.thread_cpu_s = time.thread_time()
                if from_queue:
                    self.queue.task_done()

    def _dispatch(self, pending: list[dict[str, Any]]) -> None:
        """The pending records' metrics to every tracker, in one call each (one MLflow batch, not one per record)."""
        if not pending or not self.trackers:
            pending.clear()
            return
        entries = self._entries(pending)
        pending.clear()
        for tracker in self.trackers:
            tracker.log(entries)

    def _entries(self, records: list[dict[str, Any]]) -> list[trackers.Entry]:
        skills = (self.setup.train_skills, self.setup.eval_skills)
        return [(record["kind"], record["step"], metric_values(record, *skills)) for record in records]


# ----------------------------------------------------------------------------- tracker runs


def read_tracker_runs(storage: RunStorage) -> dict[str, Any]:
    """tracking.json: tracker name -> what identifies the run's tracker run (empty when absent)."""
    return json.loads(storage.read_text(TRACKING_FILE)) if storage.exists(TRACKING_FILE) else {}


def open_tracker_runs(config: JobConfig, storage: RunStorage) -> dict[str, Any]:
    """The run's tracker runs, created when tracking.json has none (the driver calls it before Ray starts).

    MLflow: the experiment `tracking.experiment` (created when missing) gets a run named run.name with
    the config as params; W&B: a new run id; TensorBoard: the event-file directory."""
    runs = read_tracker_runs(storage)
    tracking, storage_path = config.tracking, config.run.storage_path
    if "mlflow" in tracking.sinks:
        uri = tracking.resolved_mlflow_uri(storage_path)
        known = runs.get("mlflow", {})
        if known.get("tracking_uri") != uri or not _mlflow_run_exists(uri, known.get("run_id", "")):
            runs["mlflow"] = create_mlflow_run(config, uri, storage)
    if "wandb" in tracking.sinks and runs.get("wandb", {}).get("project") != tracking.wandb_project:
        runs["wandb"] = {"run_id": uuid.uuid4().hex[:12], "project": tracking.wandb_project}
    if "tensorboard" in tracking.sinks:
        runs["tensorboard"] = {"log_dir": str(storage.local_path() / "tensorboard")}
    if runs:
        storage.write_text(TRACKING_FILE, json.dumps(runs, indent=2) + "\n")
    return runs


def _mlflow_run_exists(uri: str, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if not run_id:
        return False
    try:
        MlflowClient(uri).get_run(run_id)
    except MlflowException:
        return False
    return True


def create_mlflow_run(
    config: JobConfig, uri: str, storage: RunStorage, run_name: str = "", tags: dict[str, str] | None = None
) -> dict[str, str]:
    """A new MLflow run in `tracking.experiment` (created when missing), named `run_name` (default run.name),
    with the config as params: its run id, experiment id and tracking URI."""
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    if experiment is None:
        artifacts = config.tracking.default_mlflow_artifacts(config.run.storage_path)
        experiment_id = client.create_experiment(config.tracking.experiment, artifact_location=artifacts)
    else:
        experiment_id = experiment.experiment_id
    tags = {"skillit.strategy": config.mixture.strategy, "skillit.run_directory": storage.uri(""), **(tags or {})}
    run = client.create_run(experiment_id, run_name=run_name or config.run.name, tags=tags)
    params = [Param(key, str(value)[:MLFLOW_MAX_PARAM_LENGTH]) for key, value in flat_config(config).items()]
    for start in range(0, len(params), MLFLOW_MAX_PARAMS_PER_BATCH):
        client.log_batch(run.info.run_id, params=params[start : start + MLFLOW_MAX_PARAMS_PER_BATCH])
    return {"run_id": run.info.run_id, "experiment_id": experiment_id, "tracking_uri": uri}


def flat_config(config: JobConfig) -> dict[str, Any]:
    """The config as dotted keys ("train.steps": 300), option sections included."""

    def flatten(mapping: dict[str, Any], prefix: str) -> dict[str, Any]:
        flat = {}
        for key, value in mapping.items():
            if isinstance(value, dict) and value:
                flat.update(flatten(value, f"{prefix}{key}."))
            else:
                flat[prefix + key] = value
        return flat

    return flatten(as_mapping(config), "")


def tracking_sink(config: JobConfig, setup: SkillSetup, storage: RunStorage) -> TrackingSink:
    """Rank 0's sink: the run's jsonl files and the trackers of `tracking.sinks`, on the runs of tracking.json."""
    runs = open_tracker_runs(config, storage)
    tracking, run_directory = config.tracking, str(storage.local_path())
    built = []
    for name in tracking.trackers():
        if name == "mlflow":
            built.append(trackers.MlflowTracker(runs["mlflow"]["tracking_uri"], runs["mlflow"]["run_id"]))
        elif name == "tensorboard":
            built.append(trackers.TensorBoardTracker(runs["tensorboard"]["log_dir"], run_directory))
        else:
            wandb_run = runs["wandb"]
            built.append(trackers.WandbTracker(
                run_directory, wandb_run["run_id"], wandb_run["project"], tracking.wandb_mode, config.run.name,
                config.to_dict(),
            ))  # fmt: skip
    return TrackingSink(JsonlSink(storage), built, setup)


def finish_tracker_runs(config: JobConfig, storage: RunStorage, finished: bool) -> None:
    """After the run's outputs (driver): its files to every tracker; the MLflow run ends FINISHED or FAILED."""
    runs = {name: identity for name, identity in read_tracker_runs(storage).items() if name in config.tracking.sinks}
    if not runs:
        return
    with tempfile.TemporaryDirectory(prefix="skillit-artifacts-") as directory:
        files = _artifact_files(config, storage, Path(directory))
        texts = {path.stem: path.read_text() for path in files if path.name in ("config.json", "summary.json")}
        step = config.train.steps
        for name, identity in runs.items():
            extra = {"step": step, "run_directory": str(storage.local_path()), "mode": config.tracking.wandb_mode,
                     "name": config.run.name}  # fmt: skip
            trackers.log_run_artifacts(name, {**identity, **extra}, files, texts)
    if "mlflow" in runs:
        from mlflow.tracking import MlflowClient

        MlflowClient(runs["mlflow"]["tracking_uri"]).set_terminated(
            runs["mlflow"]["run_id"], "FINISHED" if finished else "FAILED"
        )


def mark_tracker_runs_failed(config: JobConfig, storage: RunStorage) -> None:
    """The fit raised (driver): the MLflow run ends FAILED (a re-run resumes it); never raises itself."""
    mlflow_run = read_tracker_runs(storage).get("mlflow") if "mlflow" in config.tracking.sinks else None
    if mlflow_run is None:
        return
    try:
        from mlflow.tracking import MlflowClient

        MlflowClient(mlflow_run["tracking_uri"]).set_terminated(mlflow_run["run_id"], "FAILED")
    except Exception as error:  # the fit's own error is the one to raise
        logger.warning("could not mark the MLflow run %s failed: %s", mlflow_run["run_id"], error)


def _artifact_files(config: JobConfig, storage: RunStorage, directory: Path) -> list[Path]:
    """The run's files to log, copied into `directory` (the run directory may be on object storage)."""
    sources = [(storage, name) for name in RUN_ARTIFACTS]
    graph_path = config.mixture.graph_path
    if graph_path.endswith(".json"):
        graph_storage = RunStorage.at(graph_path.rsplit("/", 1)[0] if "/" in graph_path else ".")
        sources += [(graph_storage, graph_path.rsplit("/", 1)[-1]), (graph_storage, "graph_heatmap.png")]
    files = []
    for source, name in sources:
        if source.exists(name):
            path = directory / name
            path.write_bytes(source.read_bytes(name))
            files.append(path)
    return files
