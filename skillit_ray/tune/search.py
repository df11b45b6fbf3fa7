"""The search over eta, rounds and window for Skill-it on Ray Tune.

Role in the flow: graph (graph.json) -> **search** -> train (`best_config.yaml`). A Tune search over
log-uniform eta (or `tune.eta_grid`), the number of rounds and the window; each trial a short Skill-it
run in its process (repeated over `tune.seeds`), its objective the final mean validation loss (or
accuracy), ASHA stopping poor trials at evaluation points (one seed only); writes the best setting as
a ready-to-run YAML and every trial to `tune/trials.json`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import numpy as np
import yaml

from skillit_ray.config.job import JobConfig, config_from_dict
from skillit_ray.data.storage import RunStorage
from skillit_ray.mixture.registry import strategy_from_config
from skillit_ray.train.callbacks import LoopCallback
from skillit_ray.train.launch import connect_ray
from skillit_ray.train.local import run_local_training
from skillit_ray.train.resolve import resolve_run
from skillit_ray.tune.trials import trial_run_config


class TuneReport(LoopCallback):
    """Every evaluation after step 0 reported to Ray Tune (ASHA's intermediate results)."""

    def __init__(self, metric: str) -> None:
        self.metric = metric

    def on_report(self, step: int, metrics: dict[str, Any], checkpoint_directory: str | None) -> None:
        import ray.tune

        if step > 0 and "mean_val_loss" in metrics:
            value = metrics.get("mean_accuracy") if self.metric == "mean_accuracy" else metrics["mean_val_loss"]
            ray.tune.report({"objective": value, "step": step, "final": False})


def _objective(records: dict[str, Any], metric: str) -> float:
    last = records["evaluations"][-1]
    if metric == "mean_accuracy":
        if last["accuracy"] is None:
            raise ValueError("tune.metric=mean_accuracy needs skills with accuracy (LEGO/addition)")
        return float(np.mean(last["accuracy"]))
    return float(np.mean(last["val_loss"]))


def _tune_trial(trial_config: dict[str, Any]) -> None:
    import ray.tune

    base = config_from_dict(trial_config["config"])
    objectives = []
    for seed in base.tune.seeds:
        config = trial_run_config(base)
        config.mixture.eta = float(trial_config["eta"])
        config.mixture.num_rounds = int(trial_config["num_rounds"])
        config.mixture.window = int(trial_config["window"])
        config.train.seed = int(seed)
        config.validate()

        callbacks = [TuneReport(base.tune.metric)] if len(base.tune.seeds) == 1 else []  # ASHA sees one seed
        records = run_local_training(config, callbacks)
        objectives.append(_objective(records, base.tune.metric))
    ray.tune.report({"objective": float(np.mean(objectives)), "per_seed": objectives, "final": True})


def search_space(config: JobConfig) -> dict[str, Any]:
    """Tune's parameter space: the eta grid crossed with every rounds and window choice, or
    log-uniform etas with a random rounds and window choice per sample."""
    from ray import tune

    grid = bool(config.tune.eta_grid)
    pick = tune.grid_search if grid else tune.choice
    return {
        "config": config.to_dict(),
        "eta": tune.grid_search(config.tune.eta_grid)
        if grid
        else tune.loguniform(config.tune.eta_min, config.tune.eta_max),
        "num_rounds": pick(config.tune.num_rounds_choices),
        "window": pick(config.tune.window_choices),
    }


def tune_hyperparameters(config: JobConfig) -> dict[str, Any]:
    """Search eta (log scale), rounds and window for Skill-it; write best_config.yaml."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    config, setup = resolve_run(config)
    config.tune.validate_for_steps(config.train.steps)
    strategy_from_config(config, setup.train_skills, setup.eval_skills)  # graph and strategy errors before any trial
    connect_ray(config)
    mode = "max" if config.tune.metric == "mean_accuracy" else "min"
    scheduler = None
    if config.tune.use_asha and len(config.tune.seeds) == 1:
        max_reports = max(1, config.train.steps // config.train.eval_every_n_steps + config.mixture.num_rounds + 1)
        scheduler = ASHAScheduler(max_t=max_reports, grace_period=max(1, max_reports // 4), reduction_factor=2)
    storage = RunStorage(config.run.storage_path, config.run.name)
    tuner = tune.Tuner(
        tune.with_resources(_tune_trial, {"cpu": config.tune.cpus_per_trial, "gpu": config.tune.gpus_per_trial}),
        param_space=search_space(config),
        tune_config=tune.TuneConfig(
            metric="objective",
            mode=mode,
            num_samples=1 if config.tune.eta_grid else config.tune.num_samples,
            scheduler=scheduler,
            max_concurrent_trials=config.tune.max_concurrent_trials or None,
        ),
        run_config=tune.RunConfig(name=f"{config.run.name}-tune", storage_path=storage.train_storage_path(), verbose=0),
    )
    results = tuner.fit()
    errors = [result.error for result in results if result.error is not None]
    if len(errors) == len(results):
        raise RuntimeError(f"every tuning trial failed; first error: {errors[0]}")
    finished = [r for r in results if r.error is None and r.metrics and r.metrics.get("final")]
    if not finished:
        raise RuntimeError("no tuning trial finished (ASHA stopped them all?); raise tune.num_samples")
    best = (max if mode == "max" else min)(finished, key=lambda r: r.metrics["objective"])
    best_config = copy.deepcopy(config)
    best_config.mixture.eta = float(best.config["eta"])
    best_config.mixture.num_rounds = int(best.config["num_rounds"])
    best_config.mixture.window = int(best.config["window"])
    best_path = storage.write_text("tune/best_config.yaml", yaml.safe_dump(_plain(best_config), sort_keys=False))
    trials = [
        {"eta": r.config["eta"], "num_rounds": r.config["num_rounds"], "window": r.config["window"],
         "objective": (r.metrics or {}).get("objective"), "finished": bool((r.metrics or {}).get("final")),
         "error": str(r.error) if r.error else None}
        for r in results
    ]  # fmt: skip
    storage.write_text("tune/trials.json", json.dumps(trials, indent=2))
    return {
        "best": {"eta": best_config.mixture.eta, "num_rounds": best_config.mixture.num_rounds,
                 "window": best_config.mixture.window, "objective": best.metrics["objective"]},
        "best_config": best_path,
        "config": best_config,
        "num_trials": len(results),
        "num_errors": len(errors),
    }  # fmt: skip


def _plain(config: JobConfig) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config)))
