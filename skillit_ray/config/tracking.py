"""The `tracking` section: which experiment trackers receive a training run's metrics, besides its jsonl files.

Role in the flow: config -> **tracking section** -> train (`train/tracking.py` builds rank 0's sinks from it;
the driver opens and closes the trackers' runs). Checked before Ray starts, including that the
tracker's package is installed (the error names the extra to install). No Ray import.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field

from skillit_ray.config.loading import choice, require

SINKS = ("jsonl", "mlflow", "tensorboard", "wandb")
"""The metric sinks; jsonl (mixture.jsonl, metrics.jsonl in the run directory) is always written."""

SINK_PACKAGES = {"mlflow": "mlflow", "tensorboard": "tensorboard", "wandb": "wandb"}
"""Sink -> the Python package it needs, installed by the extra of the same name (`skillit-ray[mlflow]`)."""

WANDB_MODES = ("offline", "online", "disabled")
DEFAULT_MLFLOW_DATABASE = "mlflow.db"
"""`tracking.mlflow_uri` empty: MLflow's SQLite store `<run.storage_path>/mlflow.db` (one per storage path,
every run of it an MLflow run), artifacts under `<run.storage_path>/mlartifacts/`."""


@dataclass
class TrackingConfig:
    """Experiment trackers that receive the run's metrics (rank 0 writes them), like the HF Trainer's `report_to`."""

    sinks: list[str] = field(default_factory=lambda: ["jsonl"])
    """Where metrics go, any of jsonl, mlflow, tensorboard, wandb; jsonl is always on. Install a tracker
    with its extra: pip install 'skillit-ray[mlflow]' (or [tensorboard], [wandb])."""
    mlflow_uri: str = ""
    """MLflow tracking URI (a server http://..., sqlite:///path.db, databricks); empty: the SQLite store
    <run.storage_path>/mlflow.db with artifacts in <run.storage_path>/mlartifacts (local storage only)."""
    experiment: str = "skillit-ray"
    """MLflow experiment holding the run (created when missing); the MLflow run is named run.name."""
    wandb_project: str = "skillit-ray"
    """W&B project of the run (the W&B run is named run.name)."""
    wandb_mode: str = "offline"
    """W&B mode: offline (files under <run dir>/wandb, upload later with `wandb sync`), online or disabled."""

    def validate(self) -> None:
        for sink in self.sinks:
            choice("tracking.sinks", sink, SINKS)
        require(
            len(set(self.sinks)) == len(self.sinks), f"tracking.sinks={self.sinks} names a sink twice; name each once"
        )
        choice("tracking.wandb_mode", self.wandb_mode, WANDB_MODES)
        require(bool(self.experiment), "tracking.experiment must name an MLflow experiment, e.g. skillit-ray")
        require(bool(self.wandb_project), "tracking.wandb_project must name a W&B project, e.g. skillit-ray")
        for sink in self.trackers():
            package = SINK_PACKAGES[sink]
            require(
                importlib.util.find_spec(package) is not None,
                f"tracking.sinks has {sink} but the {package} package is not installed: "
                f"pip install 'skillit-ray[{sink}]' (or remove {sink} from tracking.sinks)",
            )

    def trackers(self) -> list[str]:
        """The configured trackers besides jsonl, in the order given."""
        return [sink for sink in self.sinks if sink != "jsonl"]

    def validate_storage(self, storage_path: str) -> None:
        """Checks against run.storage_path: the trackers that keep files need a local run directory."""
        remote = "://" in storage_path
        for sink in ("tensorboard", "wandb"):
            require(
                not (remote and sink in self.sinks),
                f"tracking.sinks has {sink} but run.storage_path={storage_path!r} is not a local directory: {sink} "
                "writes its files under the run directory; use a local run.storage_path or remove it from "
                "tracking.sinks",
            )
        require(
            not (remote and "mlflow" in self.sinks and not self.mlflow_uri),
            f"tracking.sinks has mlflow with run.storage_path={storage_path!r}: the default store "
            "(<run.storage_path>/mlflow.db) needs a local directory; set tracking.mlflow_uri (e.g. an MLflow "
            "server http://HOST:5000)",
        )

    def resolved_mlflow_uri(self, storage_path: str) -> str:
        """The MLflow tracking URI: `mlflow_uri`, or the SQLite store under the (local) storage path."""
        if self.mlflow_uri:
            return self.mlflow_uri
        return "sqlite:///" + os.path.join(os.path.abspath(storage_path), DEFAULT_MLFLOW_DATABASE)

    def default_mlflow_artifacts(self, storage_path: str) -> str | None:
        """Where the default store keeps artifacts (`<storage_path>/mlartifacts`); None: the server decides."""
        return None if self.mlflow_uri else os.path.join(os.path.abspath(storage_path), "mlartifacts")


def absolute_mlflow_uri(uri: str) -> str:
    """A relative local MLflow store (`sqlite:///rel.db`, `./mlruns`) made absolute against the working
    directory, so Ray Train workers, which run elsewhere, write the store the driver opens."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        return prefix + os.path.abspath(uri[len(prefix) :])
    if uri and "://" not in uri and not uri.startswith(("databricks", "sqlite:")):
        return os.path.abspath(os.path.expanduser(uri))
    return uri
