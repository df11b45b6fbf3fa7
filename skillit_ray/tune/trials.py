"""What every Tune trial shares: its config (one in-process worker) and one measured short run.

Role in the flow: config -> **trials** -> graph runs and the search (`graph_runs.py`, `search.py`). A
trial runs the training loop in its own process (`train/local.py`) from the same starting model as a
training run, so a graph run and a training run measure losses identically.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from skillit_ray.config.job import JobConfig
from skillit_ray.data.sources.parquet import with_reader
from skillit_ray.train.local import run_local_training

logger = logging.getLogger("skillit_ray")


def trial_run_config(config: JobConfig) -> JobConfig:
    """A copy for one in-process trial: one worker, and parquet read with pyarrow in the trial's process.

    Ray Data reads inside Tune trials can deadlock a small cluster: trials take every CPU and each
    read waits forever for one ("Cluster resources are not enough ... may hang forever"). Reading in
    the trial needs no CPU beyond the trial's own, and yields the same rows (tested).
    """
    if config.data.source == "parquet" and config.data.source_options().get("reader") == "ray_data":
        logger.warning("data.parquet.reader=ray_data is read with pyarrow inside Tune trials (no Ray Data deadlock)")
    trial = copy.deepcopy(with_reader(config, "arrow", replace=("auto", "ray_data", "streaming_split")))
    trial.scaling.num_workers = 1
    return trial


def short_run_config(config: JobConfig, proportions: list[float]) -> JobConfig:
    """The config of one graph-learning run: a fixed mixture for graph.steps steps, one round."""
    short = trial_run_config(config)
    short.mixture.strategy = "random"  # a fixed mixture; "random" takes explicit proportions
    short.mixture.proportions = list(proportions)
    short.mixture.num_rounds = 1
    short.train.steps = config.graph.steps
    short.train.learning_rate = config.graph.learning_rate or config.train.learning_rate
    short.train.warmup_steps = config.graph.warmup_steps
    short.train.lr_schedule = config.graph.lr_schedule
    short.train.eval_every_n_steps = config.graph.measure_step()
    return short.validate()


def measure_short_run(config: JobConfig, proportions: list[float]) -> dict[str, Any]:
    """Validation losses of every evaluation skill before training and at graph.measure_at_step."""
    short = short_run_config(config, proportions)
    records = run_local_training(short)
    by_step = {record["step"]: record["val_loss"] for record in records["evaluations"]}
    measure_step = config.graph.measure_step()
    return {
        "initial_losses": by_step[0],
        "losses_after": by_step[measure_step],
        "final_losses": by_step[short.train.steps],
    }
