"""The experiment trackers behind rank 0's metrics sink: MLflow, TensorBoard and W&B, one class each.

Role in the flow: tracking (`TrackingSink`, on its thread) -> **trackers** -> the tracker's store. Each
tracker gets the metric values of one record (`tracking.metric_values`: "train/loss",
"eval/val_loss/<skill>", "mixture/weight/<skill>", ...) with its kind and step, and the same four calls
as a metrics sink: `restore(step)` first (the run continues after `step`), then `log`, `flush`, `close`.

No step is logged twice when a run resumes from a checkpoint older than what the tracker already holds:

    MLflow       reads the run's metric histories on restore and skips each kind's steps up to the
                 last one logged (MLflow cannot delete logged points; the deterministic resume
                 retrains those steps to the same values)
    TensorBoard  opens the writer with `purge_step` = restored step + 1: TensorBoard's readers hide the
                 events at or after it that an earlier attempt wrote, and show the new ones
    W&B          skips each kind's steps up to the last one logged, which it keeps in
                 `wandb_logged_steps.json` beside its files (an offline run cannot be asked)

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


class SkipLoggedSteps:
    """Per kind, the last step the tracker holds; a record at or before it is not logged again."""

    def __init__(self) -> None:
        self.logged_through: dict[str, int] = {}

    def already_logged(self, kind: str, step: int) -> bool:
        return step <= self.logged_through.get(kind, -1)


class MlflowTracker(SkipLoggedSteps):
    """Metrics of one MLflow run (its id opened by the driver, `tracking.open_tracker_runs`)."""

    name = "mlflow"

    def __init__(self, tracking_uri: str, run_id: str) -> None:
        from mlflow.tracking import MlflowClient

        super().__init__()
        self.client, self.run_id = MlflowClient(tracking_uri), run_id

    def restore(self, step: int) -> None:
        self.client.update_run(self.run_id, status="RUNNING")
        for kind, key in WATERMARK_KEYS.items():
            history = self.client.get_metric_history(self.run_id, key)
            if history:
                self.logged_through[kind] = max(metric.step for metric in history)

    def log(self, kind: str, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        if self.already_logged(kind, step):
            return
        timestamp_ms = int(time.time() * 1000)
        metrics = [Metric(key, float(value), timestamp_ms, step) for key, value in values.items()]
        for start in range(0, len(metrics), MLFLOW_MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + MLFLOW_MAX_METRICS_PER_BATCH])

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardTracker:
    """Scalars in TensorBoard event files under `log_dir` (`<run dir>/tensorboard`)."""

    name = "tensorboard"

    def __init__(self, log_dir: str) -> None:
        self.log_dir, self.writer = log_dir, None

    def restore(self, step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # step 0 retrains everything, so an earlier attempt's events are all hidden
        self.writer = SummaryWriter(log_dir=self.log_dir, purge_step=step + 1 if step else 0)

    def log(self, kind: str, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, global_step=step)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class WandbTracker(SkipLoggedSteps):
    """Metrics of one W&B run (resumed by id), offline by default: files under `<run dir>/wandb`."""

    name = "wandb"

    def __init__(self, run_directory: str, run_id: str, project: str, mode: str, run_name: str, config: dict) -> None:
        super().__init__()
        self.run_directory, self.run_id, self.project, self.mode = run_directory, run_id, project, mode
        self.run_name, self.config, self.run = run_name, config, None
        self.steps_file = Path(run_directory) / WANDB_LOGGED_STEPS_FILE

    def restore(self, step: int) -> None:
        self.run = init_wandb_run(self.run_directory, self.run_id, self.project, self.mode, self.run_name, self.config)
        if self.steps_file.is_file():
            self.logged_through = {kind: int(last) for kind, last in json.loads(self.steps_file.read_text()).items()}

    def log(self, kind: str, step: int, values: dict[str, float]) -> None:
        if self.already_logged(kind, step):
            return
        self.run.log(values, step=step)
        self.logged_through[kind] = step
        temporary = self.steps_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.logged_through))
        temporary.replace(self.steps_file)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


def init_wandb_run(run_directory: str, run_id: str, project: str, mode: str, run_name: str, config: dict | None):
    """The W&B run `run_id` (created or resumed), quiet: no console capture, system metrics or code saving."""
    import wandb

    settings = wandb.Settings(
        console="off", silent=True, x_disable_stats=True, x_disable_machine_info=True, save_code=False,
        x_save_requirements=False, disable_git=True,
    )  # fmt: skip
    return wandb.init(
        dir=run_directory, id=run_id, resume="allow", project=project, name=run_name, mode=mode,
        config=config, settings=settings, reinit="create_new",
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
