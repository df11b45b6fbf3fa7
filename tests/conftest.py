"""Shared fixtures: one local Ray per test session (start-up costs ~3 s), small configs, prepared data.

Run the default suite with `make test`; long tests are marked `slow` (`make test-slow`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from skillit_ray.config.job import load_config

LEGO3_GRAPH = "mixture.graph=[[1, 0, 0], [1, 1, 0], [0, 0, 1]]"


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray with 4 logical CPUs (2 train workers + Ray Data tasks fit on 2 real cores)."""
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if not ray.is_initialized():
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def small_config(tmp_path, *overrides: str):
    """LEGO with 3 variables, the tiny model, a few steps: about a second of training per worker."""
    return load_config(
        None,
        [
            "data.lego.num_variables=3",
            "data.sequence_length=28",
            "data.num_val_per_skill=20",
            "train.steps=12",
            "train.batch_size=8",
            "train.eval_every_n_steps=4",
            "train.warmup_steps=2",
            "mixture.num_rounds=3",
            "mixture.eta=0.5",
            LEGO3_GRAPH,
            f"run.storage_path={tmp_path}",
            *overrides,
        ],
    )


@pytest.fixture(scope="session")
def lego_dataset(tmp_path_factory):
    """A prepared LEGO-3 parquet dataset with 5 part files of 40 rows per skill."""
    from skillit_ray.data.prepare.generators import prepare_synthetic

    directory = tmp_path_factory.mktemp("lego3")
    config = load_config(None, ["data.lego.num_variables=3", "data.num_val_per_skill=20"])
    prepare_synthetic(config, "lego", str(directory), rows_per_skill=200, rows_per_part=40)
    return directory


@pytest.fixture(scope="session")
def mlflow_database(tmp_path_factory) -> Path:
    """An MLflow SQLite store with its tables made once (MLflow's migrations take seconds); each test copies it."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "template.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path
