"""Ray Tune drivers: skills-graph learning from parallel short runs, and eta/rounds/window search.

Role in the flow: train -> **graph/tune**. Every short run is a Ray Tune trial that runs the training
loop in-process (`train.run_local_training`: one worker, a local sampler state instead of the actor) from
the same starting model (`model.pretrained_path`, or the seeded initial weights), so a graph run and
a training run measure losses identically.

* `learn_graph` (paper Algorithms 3 and 2): one trial per training skill (linear) or per skill and
  pair of skills (brute force); each trial trains on its one-hot or pairwise-uniform mixture for
  `graph.steps` steps and reads every evaluation skill's validation loss before training and at
  `graph.measure_at_step`. `graph.py` turns the loss drops into A; we write graph.json, graph.npy and
  a heatmap. Failing trials are retried `graph.max_failures` times and otherwise fail the run with
  their error: a graph is never built from a partial set of runs.
* `tune_hyperparameters`: a Tune search over log-uniform eta, the number of rounds and the window,
  each trial a short Skill-it run (repeated over `tune.seeds`), objective the final mean validation
  loss (or accuracy), ASHA stopping poor trials at evaluation points; writes the best setting as a
  ready-to-run YAML.
* `run_pipeline`: graph -> tune -> train.

`run_short_runs_sequentially` runs the same graph trials one after another in the driver process,
for the parallel speed-up figure of the benchmark.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import time
from typing import Any

import numpy as np
import yaml

from skillit_ray.config.job import JobConfig, config_from_dict
from skillit_ray.data.sources.parquet import with_reader
from skillit_ray.data.storage import RunStorage
from skillit_ray.graph import algorithms as graph_math
from skillit_ray.graph import files as graph_files
from skillit_ray.graph.diagnostics import degenerate_graph_warning
from skillit_ray.mixture.first_rounds import mixture_warning, simulate_first_rounds
from skillit_ray.mixture.registry import strategy_from_config
from skillit_ray.train.launch import connect_ray, run_local_training, run_training
from skillit_ray.train.resolve import resolve_run

logger = logging.getLogger("skillit_ray")


# ----------------------------------------------------------------------------- one short run


def trial_run_config(config: JobConfig) -> JobConfig:
    """A copy for one in-process trial: one worker, and parquet read with pyarrow in the trial's process.

    Ray Data reads inside Tune trials can deadlock a small cluster: trials take every CPU and each
    read waits forever for one ("Cluster resources are not enough ... may hang forever"). Reading in
    the trial needs no CPU beyond the trial's own, and yields the same rows (tested).
    """
    if config.data.source == "parquet" and config.data.source_options().get("reader") == "ray_data":
        logger.warning("data.parquet.reader=ray_data is read with pyarrow inside Tune trials (no Ray Data deadlock)")
    trial = copy.deepcopy(with_reader(config, "arrow", replace=("auto", "ray_data")))
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


def _graph_trial(trial_config: dict[str, Any]) -> None:
    """Ray Tune function trainable: its batch of short runs one after another, reported once."""
    import ray.tune

    config = config_from_dict(trial_config["config"])
    measured = {spec["run_id"]: measure_short_run(config, spec["proportions"]) for spec in trial_config["specs"]}
    ray.tune.report({"measurements": measured})


def trial_batches(specs: list[dict[str, Any]], config: JobConfig, cluster_cpus: float, cluster_gpus: float) -> list:
    """The short runs dealt to trials: `graph.runs_per_trial` each, or (0) one trial per slot of the cluster."""
    graph = config.graph
    runs_per_trial = graph.runs_per_trial
    if runs_per_trial == 0:
        slots = [cluster_cpus // graph.cpus_per_trial if graph.cpus_per_trial else len(specs)]
        if graph.gpus_per_trial:
            slots.append(cluster_gpus // graph.gpus_per_trial)
        if graph.max_concurrent_trials:
            slots.append(graph.max_concurrent_trials)
        runs_per_trial = math.ceil(len(specs) / max(1, int(min(slots))))
    return [specs[start : start + runs_per_trial] for start in range(0, len(specs), runs_per_trial)]


# ----------------------------------------------------------------------------- graph learning


def _run_specs(config: JobConfig, train_skills: list[str], eval_skills: list[str]) -> list[dict[str, Any]]:
    if config.graph.method == "linear":
        return graph_math.linear_run_specs(train_skills)
    missing = [name for name in eval_skills if name not in train_skills]
    if missing:
        raise ValueError(
            f"graph.method=brute-force needs evaluation skills among the training skills (paper Alg. 2); "
            f"{missing} are not: use graph.method=linear for out-of-domain graphs"
        )
    return graph_math.brute_force_run_specs(train_skills)


def assemble_graph(config, setup, measurements: dict[str, dict[str, Any]], directory: str, extra: dict) -> dict:
    """The skills graph from the short runs' measurements: graph.json, graph.npy, heatmap, warnings."""
    initial = np.asarray(next(iter(measurements.values()))["initial_losses"])
    losses_after = {run_id: np.asarray(m["losses_after"]) for run_id, m in measurements.items()}
    if config.graph.method == "linear":
        raw = graph_math.linear_graph(setup.train_skills, setup.eval_skills, initial, losses_after)
    else:
        raw = graph_math.brute_force_graph(setup.train_skills, setup.eval_skills, initial, losses_after)
    normalized = graph_math.normalize_graph(
        raw,
        initial,
        normalization=config.graph.normalization,
        threshold=config.graph.threshold,
        diagonal=config.graph.diagonal,
        train_skills=setup.train_skills,
        eval_skills=setup.eval_skills,
        common_drop=config.graph.common_drop,
    )
    deltas = graph_math.loss_drops(initial, losses_after)
    mixture = config.mixture
    simulated = simulate_first_rounds(normalized, initial, mixture.eta, mixture.window, mixture.window_reduction())
    advice = mixture_warning(
        normalized, initial, mixture.eta, mixture.window, mixture.window_reduction(), setup.train_skills
    )
    extra = {**extra, "simulated_first_weights": [weights.tolist() for weights in simulated], "mixture_warning": advice}
    path = graph_files.write_graph(
        directory,
        train_skills=setup.train_skills,
        eval_skills=setup.eval_skills,
        method=config.graph.method,
        steps=config.graph.steps,
        measure_at_step=config.graph.measure_step(),
        initial_losses=initial,
        raw_deltas=deltas,
        graph=normalized,
        raw_graph=raw,
        normalization=config.graph.normalization,
        threshold=config.graph.threshold,
        diagonal=config.graph.diagonal,
        extra=extra,
        common_drop=config.graph.common_drop,
    )
    from skillit_ray.train import report

    report.plot_graph_heatmap(
        normalized, setup.train_skills, setup.eval_skills, f"{directory}/graph_heatmap.png",
        f"skills graph ({config.graph.method}, {config.graph.steps} steps)",
    )  # fmt: skip
    warning = degenerate_graph_warning(normalized)
    for message in (warning, advice):
        if message:
            logger.warning(message)
    return {"graph_json": str(path), "graph": normalized.tolist(), "warning": warning, **extra}


def graph_output_directory(config: JobConfig) -> str:
    """Where graph.json, graph.npy and the heatmap go: graph.output_path, else <storage>/<run>/graph."""
    if config.graph.output_path:
        return RunStorage.at(config.graph.output_path).uri("")
    return RunStorage(config.run.storage_path, config.run.name).uri("graph")


def learn_graph(config: JobConfig) -> dict[str, Any]:
    """Run the short runs of Algorithm 3 (linear) or 2 (brute force) as parallel Tune trials."""
    from ray import tune

    config, setup = resolve_run(config)  # a missing skill or a bad tokenizer fails here, before any trial
    specs = _run_specs(config, setup.train_skills, setup.eval_skills)
    directory = graph_output_directory(config)
    connect_ray(config)
    import ray

    cluster = ray.cluster_resources()
    batches = trial_batches(specs, config, cluster.get("CPU", 1.0), cluster.get("GPU", 0.0))
    resources = {"cpu": config.graph.cpus_per_trial, "gpu": config.graph.gpus_per_trial}
    trainable = tune.with_resources(_graph_trial, resources)
    storage = RunStorage(config.run.storage_path, config.run.name)
    started = time.perf_counter()
    tuner = tune.Tuner(
        trainable,
        param_space={"config": config.to_dict(), "specs": tune.grid_search(batches)},
        tune_config=tune.TuneConfig(max_concurrent_trials=config.graph.max_concurrent_trials or None),
        run_config=tune.RunConfig(
            name=f"{config.run.name}-graph",
            storage_path=storage.train_storage_path(),
            failure_config=tune.FailureConfig(max_failures=config.graph.max_failures),
            verbose=0,
        ),
    )
    results = tuner.fit()
    wall_s = time.perf_counter() - started
    failed = [result for result in results if result.error is not None]
    if failed:
        raise RuntimeError(
            f"graph runs failed: {len(failed)} of {len(batches)} trials ({len(specs)} runs) failed after "
            f"{config.graph.max_failures} retries; "
            f"first error: {failed[0].error}"
        )
    measurements = {
        run_id: measured for result in results for run_id, measured in result.metrics["measurements"].items()
    }
    extra = {"num_runs": len(specs), "num_trials": len(batches), "parallel_wall_s": wall_s}
    return assemble_graph(config, setup, measurements, directory, extra)


def run_short_runs_sequentially(config: JobConfig) -> dict[str, Any]:
    """The same short runs one after another in this process (baseline for the speed-up figure)."""
    config, setup = resolve_run(config)
    specs = _run_specs(config, setup.train_skills, setup.eval_skills)
    started = time.perf_counter()
    measurements = {spec["run_id"]: measure_short_run(config, spec["proportions"]) for spec in specs}
    return {"measurements": measurements, "sequential_wall_s": time.perf_counter() - started}


# ----------------------------------------------------------------------------- eta / rounds / window search


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

        def on_evaluation(metrics: dict[str, Any], seed=seed) -> None:
            if len(base.tune.seeds) == 1 and metrics["step"] > 0:
                value = (
                    metrics.get("mean_accuracy") if base.tune.metric == "mean_accuracy" else metrics["mean_val_loss"]
                )
                ray.tune.report({"objective": value, "step": metrics["step"], "final": False})

        records = run_local_training(config, on_evaluation)
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


def run_pipeline(config: JobConfig) -> dict[str, Any]:
    """graph -> tune -> train, each stage feeding the next (graph.json into mixture.graph_path)."""
    graph_result = learn_graph(config)
    tuned_input = copy.deepcopy(config)
    tuned_input.mixture.graph_path = graph_result["graph_json"]
    tuned_input.mixture.graph = []
    tuned_input.mixture.graph_preprocessing = "none"
    tune_result = tune_hyperparameters(tuned_input)
    summary = run_training(tune_result.pop("config"))
    return {"graph": graph_result, "tune": tune_result, "train": summary}
