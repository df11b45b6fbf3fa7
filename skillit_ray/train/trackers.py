"""The experiment trackers behind rank 0's metrics sink: MLflow, TensorBoard and W&B, one class each.

Role in the flow: tracking (`TrackingSink`, on its thread) -> **trackers** -> the tracker's store. Each
tracker gets records as (kind, step, metric values) entries (`tracking.metric_values`: "train/loss",
"eval/val_loss/<skill>", "mixture/weight/<skill>", ...), several at a time, through three calls:
`restore(step, written)` first (the run continues after `step`; `written` are the jsonl records up to
it, to catch up with), then `log(entries)`, and `close()`.

Every tracker knows, per kind of record, the last step it holds, and a resumed run logs no step twice:

    MLflow       asks the run's metric histories on restore, logs the written records after them, and
                 skips the resumed run's steps it already holds (MLflow cannot delete logged points; the
                 deterministic resume retrains those steps to the same values)
    TensorBoard  reopens with `purge_step` just after the restored step (or before the first step it
                 may miss): its readers hide an earlier attempt's events from there on, and the written
                 records from there and the resumed run's steps are logged anew
    W&B          as MLflow, from `wandb_logged_steps.json` beside its files (an offline run cannot be asked)

TensorBoard and W&B write their steps file after each batch (TensorBoard's events flushed first).
`log_evaluation` adds `skillit-ray evaluate`'s results to a finished run's trackers (`downstream.py`).
The packages are imported when a tracker is built, so an unused tracker costs nothing. No Ray import.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

WATERMARK_KEYS = {
    "train": "train/loss",
    "eval": "eval/mean_val_loss",
    "round": "mixture/round",
    "throughput": "throughput/tokens_per_s",
}
"""The metric every record of a kind carries: its history tells the last step logged of that kind."""

MLFLOW_MAX_METRICS_PER_BATCH = 1000
"""MLflow's limit on metrics per `log_batch` call."""

WANDB_LOGGED_STEPS_FILE = "wandb_logged_steps.json"
TENSORBOARD_LOGGED_STEPS_FILE = "tensorboard_logged_steps.json"
Entry = tuple[str, int, dict[str, float]]
"""(kind, step, metric values) of one record."""


class LoggedSteps:
    """Per kind, the last step the tracker holds; an entry at or before it is not logged again. Kept in
    `path` (written atomically after each batch) when the tracker cannot be asked."""

    def __init__(self, path: Path | None = None) -> None:
        self.path, self.logged_through = path, {}

    def load(self) -> dict[str, int]:
        if self.path is not None and self.path.is_file():
            self.logged_through = {kind: int(step) for kind, step in json.loads(self.path.read_text()).items()}
        return self.logged_through

    def save(self) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.logged_through))
        temporary.replace(self.path)

    def new_entries(self, entries: list[Entry]) -> list[Entry]:
        """The entries of steps the tracker does not hold yet; they count as held from now on."""
        kept = []
        for kind, step, values in entries:
            if step > self.logged_through.get(kind, -1):
                kept.append((kind, step, values))
                self.logged_through[kind] = step
        return kept


class MlflowTracker:
    """Metrics of one MLflow run (its id opened by the driver, `tracking.open_tracker_runs`)."""

    name = "mlflow"

    def __init__(self, tracking_uri: str, run_id: str) -> None:
        from mlflow.tracking import MlflowClient

        self.client, self.run_id, self.steps = MlflowClient(tracking_uri), run_id, LoggedSteps()

    def restore(self, step: int, written: list[Entry]) -> None:
        self.client.update_run(self.run_id, status="RUNNING")
        for kind, key in WATERMARK_KEYS.items():
            history = self.client.get_metric_history(self.run_id, key)
            if history:
                self.steps.logged_through[kind] = max(metric.step for metric in history)
        self.log(written)

    def log(self, entries: list[Entry]) -> None:
        from mlflow.entities import Metric

        timestamp_ms = int(time.time() * 1000)
        metrics = [Metric(key, value, timestamp_ms, step) for _, step, values in self.steps.new_entries(entries)
                   for key, value in values.items()]  # fmt: skip
        for start in range(0, len(metrics), MLFLOW_MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + MLFLOW_MAX_METRICS_PER_BATCH])

    def close(self) -> None:
        pass


class TensorBoardTracker:
    """Scalars in TensorBoard event files under `log_dir` (`<run dir>/tensorboard`), one event per record."""

    name = "tensorboard"

    def __init__(self, log_dir: str, run_directory: str) -> None:
        self.log_dir, self.writer = log_dir, None
        self.steps = LoggedSteps(Path(run_directory) / TENSORBOARD_LOGGED_STEPS_FILE)

    def restore(self, step: int, written: list[Entry]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        held = self.steps.load()
        kinds = {kind for kind, _, _ in written}
        # from the first step the run logs again (a fresh start evaluates step 0 again), or the first a kind
        # of the written records may miss
        purge_step = min([step + 1 if step else 0, *(held.get(kind, -1) + 1 for kind in kinds)])
        self.writer = SummaryWriter(log_dir=self.log_dir, purge_step=purge_step)
        self.steps.logged_through = {kind: purge_step - 1 for kind in WATERMARK_KEYS}
        self.log(written)

    def log(self, entries: list[Entry]) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        new = self.steps.new_entries(entries)
        for _, step, values in new:
            summary = Summary(value=[Summary.Value(tag=key, simple_value=value) for key, value in values.items()])
            self.writer.file_writer.add_summary(summary, global_step=step)
        if new:
            self.writer.flush()
            self.steps.save()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class WandbTracker:
    """Metrics of one W&B run (resumed by id), offline by default: files under `<run dir>/wandb`."""

    name = "wandb"

    def __init__(self, run_directory: str, run_id: str, project: str, mode: str, run_name: str, config: dict) -> None:
        self.run_directory, self.run_id, self.project, self.mode = run_directory, run_id, project, mode
        self.run_name, self.config, self.run = run_name, config, None
        self.steps = LoggedSteps(Path(run_directory) / WANDB_LOGGED_STEPS_FILE)

    def restore(self, step: int, written: list[Entry]) -> None:
        self.run = init_wandb_run(self.run_directory, self.run_id, self.project, self.mode, self.run_name, self.config)
        self.steps.load()
        self.log(written)

    def log(self, entries: list[Entry]) -> None:
        new = self.steps.new_entries(entries)
        for _, step, values in new:
            self.run.log(values, step=step)
        if new:
            self.steps.save()

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


def init_wandb_run(
    run_directory: str, run_id: str, project: str, mode: str, run_name: str, config: dict | None, **options: str
):
    """The W&B run `run_id` (created or resumed), quiet: no console capture, system metrics or code saving;
    `options` go to `wandb.init` (a Tune trial's group and job_type)."""
    import wandb

    settings = wandb.Settings(
        console="off", silent=True, x_disable_stats=True, x_disable_machine_info=True, save_code=False,
        x_save_requirements=False, disable_git=True,
    )  # fmt: skip
    return wandb.init(
        dir=run_directory, id=run_id, resume="allow", project=project, name=run_name, mode=mode,
        config=config, settings=settings, reinit="create_new", **options,
    )  # fmt: skip


def log_run_artifacts(tracker: str, identity: dict[str, Any], files: list[Path], texts: dict[str, str]) -> None:
    """The end of a run, on the driver: its files (config, summary, plots, graph) to the tracker, and for
    TensorBoard the config and summary as text and the plots as images."""
    if tracker == "mlflow":
        from mlflow.tracking import MlflowClient

        client = MlflowClient(identity["tracking_uri"])
        for path in files:
            client.log_artifact(identity["run_id"], str(path))
    elif tracker == "tensorboard":
        _tensorboard_artifacts(identity["log_dir"], identity.get("step", 0), files, texts)
    elif tracker == "wandb":
        run = init_wandb_run(
            identity["run_directory"], identity["run_id"], identity["project"], identity["mode"], identity["name"], None
        )
        for path in files:  # copied into the run's files (saving a file from elsewhere links it, with a warning)
            shutil.copy(path, Path(run.dir) / path.name)
            run.save(str(Path(run.dir) / path.name), base_path=run.dir, policy="now")
        summary = json.loads(texts.get("summary", "{}"))
        run.summary.update({key: value for key, value in summary.items() if isinstance(value, int | float | str)})
        run.finish()


def _tensorboard_artifacts(log_dir: str, step: int, files: list[Path], texts: dict[str, str]) -> None:
    import numpy as np
    from matplotlib.image import imread
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=log_dir) as writer:
        for name, text in texts.items():
            writer.add_text(name, f"```\n{text}\n```", global_step=step)
        for path in files:
            if path.suffix == ".png":
                image = (imread(str(path))[..., :3] * 255).astype(np.uint8)
                writer.add_image(f"plots/{path.stem}", image, global_step=step, dataformats="HWC")


def log_evaluation(
    tracker: str, identity: dict[str, Any], step: int, values: dict[str, float], files: list[Path]
) -> None:
    """`skillit-ray evaluate` after the run: its metrics (`lm_eval/<task>/<metric>`) at the model's `step`,
    and its files: MLflow metrics and artifacts under `evaluation/`, TensorBoard scalars, W&B the run's
    summary and files (a resumed offline W&B run cannot log at a step it already holds)."""
    if tracker == "mlflow":
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        client, timestamp_ms = MlflowClient(identity["tracking_uri"]), int(time.time() * 1000)
        metrics = [Metric(key, value, timestamp_ms, step) for key, value in values.items()]
        for start in range(0, len(metrics), MLFLOW_MAX_METRICS_PER_BATCH):
            client.log_batch(identity["run_id"], metrics=metrics[start : start + MLFLOW_MAX_METRICS_PER_BATCH])
        for path in files:
            client.log_artifact(identity["run_id"], str(path), artifact_path="evaluation")
    elif tracker == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(log_dir=identity["log_dir"]) as writer:
            for key, value in values.items():
                writer.add_scalar(key, value, global_step=step)
    elif tracker == "wandb":
        run = init_wandb_run(
            identity["run_directory"], identity["run_id"], identity["project"], identity["mode"], identity["name"], None
        )
        run.summary.update(values)
        for path in files:
            (Path(run.dir) / "evaluation").mkdir(exist_ok=True)
            shutil.copy(path, Path(run.dir) / "evaluation" / path.name)
            run.save(str(Path(run.dir) / "evaluation" / path.name), base_path=run.dir, policy="now")
        run.finish()
