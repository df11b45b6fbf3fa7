"""The skills graph learned from parallel short runs on Ray Tune (paper Algorithms 3 and 2).

Role in the flow: graph (which runs, the graph from their loss drops) -> **graph runs** -> graph files ->
mixture. `learn_graph` runs one trial per training skill (linear) or per skill and pair of skills
(brute force), dealt into trials (`graph.runs_per_trial`); each short run trains on its one-hot or
pairwise-uniform mixture for `graph.steps` steps and reads every evaluation skill's validation loss
before training and at `graph.measure_at_step`. `graph/algorithms.py` turns the loss drops into A; we
write graph.json, graph.npy and a heatmap, with the simulated first rounds and the warnings. Failing
trials are retried `graph.max_failures` times and otherwise fail the run with their error: a graph is
never built from a partial set of runs. The driver prints a progress line per finished trial (`progress.py`),
logs each short run to the trackers of `tracking.sinks` (`trial_tracking.py`) and ends with one line naming
graph.json. `run_short_runs_sequentially` runs the same short runs one
after another in this process (the baseline of the graph benchmark).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from skillit_ray.config.job import JobConfig, config_from_dict
from skillit_ray.data.storage import RunStorage
from skillit_ray.graph import algorithms as graph_math
from skillit_ray.graph import files as graph_files
from skillit_ray.graph.diagnostics import degenerate_graph_warning
from skillit_ray.mixture.first_rounds import mixture_warning, simulate_first_rounds
from skillit_ray.train import console, report
from skillit_ray.train.launch import connect_ray
from skillit_ray.train.progress import format_duration
from skillit_ray.train.resolve import resolve_run
from skillit_ray.tune.progress import TrialReporter
from skillit_ray.tune.trial_tracking import PhaseTrackers, graph_trial_records
from skillit_ray.tune.trials import measure_short_run

logger = logging.getLogger("skillit_ray")
GRAPH_ARTIFACTS = (graph_files.GRAPH_NPY_FILE, "graph_heatmap.png")
"""Files beside graph.json that the phase's MLflow run gets as artifacts."""


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
    """Run the short runs of Algorithm 3 (linear) or 2 (brute force) as parallel Tune trials; each trial to the
    trackers of `tracking.sinks` (`trial_tracking.py`) and a progress line, the graph's path on one line."""
    from ray import tune

    config, setup = resolve_run(config)  # a missing skill or a bad tokenizer fails here, before any trial
    specs = _run_specs(config, setup.train_skills, setup.eval_skills)
    directory = graph_output_directory(config)
    trackers = PhaseTrackers(config, "graph")  # a bad tracking URI fails before Ray starts
    connect_ray(config)
    import ray

    cluster = ray.cluster_resources()
    batches = trial_batches(specs, config, cluster.get("CPU", 1.0), cluster.get("GPU", 0.0))
    resources = {"cpu": config.graph.cpus_per_trial, "gpu": config.graph.gpus_per_trial}
    trainable = tune.with_resources(_graph_trial, resources)
    storage = RunStorage(config.run.storage_path, config.run.name)
    describe = functools.partial(graph_trial_records, config, (setup.train_skills, setup.eval_skills))
    started = time.perf_counter()
    tuner = tune.Tuner(
        trainable,
        param_space={"config": config.to_dict(), "specs": tune.grid_search(batches)},
        tune_config=tune.TuneConfig(max_concurrent_trials=config.graph.max_concurrent_trials or None),
        run_config=tune.RunConfig(
            name=f"{config.run.name}-graph",
            storage_path=storage.train_storage_path(),
            failure_config=tune.FailureConfig(max_failures=config.graph.max_failures),
            callbacks=[TrialReporter("graph", describe, trackers)],
            **console.tune_run_options(),
        ),
    )
    try:
        with console.quiet_tune_output():
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
        graph = assemble_graph(config, setup, measurements, directory, extra)
    except BaseException:
        trackers.finish([], failed=True)
        raise
    files = [graph["graph_json"], *(str(Path(graph["graph_json"]).with_name(name)) for name in GRAPH_ARTIFACTS)]
    trackers.finish(files, failed=False, metrics={"graph/parallel_wall_s": wall_s, "graph/num_runs": len(specs)})
    logger.info("[graph] the skills graph from %d short runs (%d trials, %s): %s", len(specs), len(batches),
                format_duration(wall_s), graph["graph_json"])  # fmt: skip
    return graph


def run_short_runs_sequentially(config: JobConfig) -> dict[str, Any]:
    """The same short runs one after another in this process (baseline for the speed-up figure)."""
    config, setup = resolve_run(config)
    specs = _run_specs(config, setup.train_skills, setup.eval_skills)
    started = time.perf_counter()
    measurements = {spec["run_id"]: measure_short_run(config, spec["proportions"]) for spec in specs}
    return {"measurements": measurements, "sequential_wall_s": time.perf_counter() - started}
