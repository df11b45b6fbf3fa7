"""The sample-efficiency benchmark: does the mixture make a run learn faster? Every strategy, 3 seeds.

Role in the flow: `python -m skillit_ray.benchmarks efficiency` -> **efficiency** ->
docs/benchmarks/efficiency.md. For each setting it learns the skills graph once with the system's own
short runs (what `skillit-ray graph` does), then trains every strategy with every seed in-process
(`train/local.run_local_training`, the real loop and strategies), two runs at a time on two cores
(one torch thread each), and reports:

* per strategy, the final metric (mean accuracy for synthetic skills, else mean validation loss)
  and every skill's, as mean +/- std over seeds, and the difference to stratified paired by seed;
* steps to reach stratified's final metric (first evaluation at least as good, per seed);
* the metric over steps with a band of one std over seeds (PNG per setting).

Settings (`SETTINGS`): real text made from the installed packages (`corpus.py`: 5 sources, its own
BPE), the fine-tuning and out-of-domain splits of it, LEGO and addition as the paper runs them, and
the staircase chain where each skill is one step beyond its prerequisite. Results go to
`<out>/runs.jsonl` (one line a run, so an interrupted benchmark resumes), `<out>/results.json`,
`<out>/*.png` and the markdown report. `profile="quick"` runs a tiny version of every step, for the
test suite.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from skillit_ray.benchmarks.efficiency_settings import SETTINGS, Setting, prepare_data
from skillit_ray.benchmarks.registry import Benchmark
from skillit_ray.data.storage import write_file

logger = logging.getLogger("skillit_ray")

TUNE_SEED = 100
"""Seed of the eta-tuning runs: not one of the reported seeds, so the choice does not favour them."""


def _lower_is_better(metric: str) -> bool:
    return metric == "mean_val_loss"


# ----------------------------------------------------------------------------- running


def _run_one(job: dict[str, Any]) -> dict[str, Any]:
    """One training run in a fresh worker process (1 torch thread): its evaluations and mixtures."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from skillit_ray.config.job import load_config
    from skillit_ray.train.local import run_local_training

    torch.set_num_threads(1)
    started = time.perf_counter()
    records = run_local_training(load_config(None, job["overrides"]))
    return {
        **{key: job[key] for key in ("setting", "strategy", "seed")},
        "wall_s": time.perf_counter() - started,
        "eval_skills": records["eval_skills"],
        "steps": [record["step"] for record in records["evaluations"]],
        "val_loss": [record["val_loss"] for record in records["evaluations"]],
        "accuracy": [record["accuracy"] for record in records["evaluations"]],
        "weights": [record["weights"] for record in records["rounds"]],
    }


def _learn_graph(setting: Setting, base: list[str], directory: Path) -> tuple[str, float]:
    """The setting's skills graph from the system's own short runs (sequential, in this process)."""
    from skillit_ray.config.job import load_config
    from skillit_ray.tune.graph_runs import assemble_graph, run_short_runs_sequentially

    config = load_config(None, [*base, *setting.graph_overrides, "mixture.strategy=stratified"])
    started = time.perf_counter()
    measured = run_short_runs_sequentially(config)
    from skillit_ray.train.resolve import resolve_run

    config, setup = resolve_run(config)
    result = assemble_graph(config, setup, measured["measurements"], str(directory), {"seed": config.train.seed})
    return result["graph_json"], time.perf_counter() - started


def learn_graph(setting: Setting, base: list[str], out: Path) -> tuple[str, float]:
    """The setting's graph.json (learned once, then reused) and the seconds learning it took (0 when reused)."""
    if not any(label in setting.needs_graph for label in setting.strategies):
        return "", 0.0
    directory = out / "graphs" / setting.name
    graph_file = directory / "graph.json"
    return (str(graph_file), 0.0) if graph_file.is_file() else _learn_graph(setting, base, directory)


def tuning_jobs(setting: Setting, base: list[str], etas: list[float]) -> list[dict[str, Any]]:
    """Skill-it once per eta on `TUNE_SEED` (as `skillit-ray tune` with `tune.eta_grid`)."""
    name = f"{setting.name}/tune"
    return [run_job(name, f"eta={eta:g}", TUNE_SEED, [*base, "mixture.strategy=skillit", f"mixture.eta={eta}"])
            for eta in etas]  # fmt: skip


def tuning_finals(setting: Setting, runs: list[dict[str, Any]]) -> dict[str, float]:
    """Label -> final headline of the setting's runs on the tuning seed (Skill-it per eta, the baselines)."""
    return {run["strategy"]: headline(run, setting.metric) for run in runs if run["setting"] == f"{setting.name}/tune"}


def next_eta(setting: Setting, runs: list[dict[str, Any]]) -> float | None:
    """The eta past the grid's edge when the best tuning run is at it (`tune.edges.next_value`, x3 or /3)."""
    from skillit_ray.tune.edges import next_value

    finals = {float(label.split("=", 1)[1]): value for label, value in tuning_finals(setting, runs).items()
              if label.startswith("eta=")}  # fmt: skip
    mode = "min" if _lower_is_better(setting.metric) else "max"
    return next_value(finals, mode, EDGE_FACTOR, *ETA_BOUNDS) if setting.eta_grid else None


def chosen_eta(setting: Setting, runs: list[dict[str, Any]]) -> tuple[float | None, dict]:
    """The tried eta whose tuning run ends best on the headline metric (None: no grid)."""
    if not setting.eta_grid:
        return None, {}
    finals = {label: value for label, value in tuning_finals(setting, runs).items() if label.startswith("eta=")}
    choose = min if _lower_is_better(setting.metric) else max
    best = choose(finals, key=finals.get)
    return float(best.split("=", 1)[1]), {"seed": TUNE_SEED, "final_by_eta": finals}


CANDIDATE_BASELINES = ("stratified", "target_only")
"""The baselines the pipeline scores beside Skill-it's best on the tuning seed, where a setting runs them
(`skillit-ray tune`'s `tune.candidates: [auto]`: stratified always, target_only in fine-tuning)."""
EDGE_FACTOR, ETA_BOUNDS, MAX_EDGE_EXTENSIONS = 3.0, (0.001, 1000.0), 4
"""`tune.edge_factor`, `tune.eta_bounds`, `tune.max_edge_extensions` at their defaults."""


def candidate_jobs(setting: Setting, base: list[str], graph_json: str) -> list[dict[str, Any]]:
    """The baselines of `CANDIDATE_BASELINES` the setting runs, once each on the tuning seed."""
    graph = graph_overrides(graph_json)
    return [run_job(f"{setting.name}/tune", label, TUNE_SEED,
                    [*base, *(graph if label in setting.needs_graph else []), *setting.strategies[label]])
            for label in CANDIDATE_BASELINES if label in setting.strategies and setting.eta_grid]  # fmt: skip


def pipeline_choice(setting: Setting, runs: list[dict[str, Any]], eta: float | None) -> dict[str, Any]:
    """What `skillit-ray pipeline` would train: the best on the tuning seed of Skill-it at its best eta and the
    candidate baselines; the eval seeds never enter the choice."""
    if eta is None:
        return {}
    finals = tuning_finals(setting, runs)
    candidates = {"skillit": finals[f"eta={eta:g}"], **{label: finals[label] for label in CANDIDATE_BASELINES
                                                      if label in finals}}  # fmt: skip
    choose = min if _lower_is_better(setting.metric) else max
    return {"winner": choose(candidates, key=candidates.get), "tuning_seed_finals": candidates, "seed": TUNE_SEED}


def strategy_jobs(
    setting: Setting, base: list[str], seeds: list[int], graph_json: str, eta: float | None
) -> list[dict]:
    """Every (strategy, seed) run: the learned graph where the strategy needs one, the tuned eta where tuned."""
    graph = graph_overrides(graph_json)
    tuned = [f"mixture.eta={eta}"] if eta is not None else []
    jobs = []
    for label, extra in setting.strategies.items():
        uses = [*(graph if label in setting.needs_graph else []), *(tuned if label in setting.tuned else [])]
        jobs += [run_job(setting.name, label, seed, [*base, *uses, *extra]) for seed in seeds]
    return jobs


def graph_overrides(graph_json: str) -> list[str]:
    """The override that points a run at the setting's learned graph (none when it has no graph)."""
    return [f"mixture.graph_path={graph_json}"] if graph_json else []


def run_job(setting: str, label: str, seed: int, overrides: list[str]) -> dict[str, Any]:
    return {"setting": setting, "strategy": label, "seed": seed, "overrides": [*overrides, f"train.seed={seed}"]}


def execute_runs(jobs: list[dict[str, Any]], out: Path, workers: int) -> None:
    """Run the jobs not yet in runs.jsonl, `workers` at a time, appending each result as it finishes."""
    runs_path = out / "runs.jsonl"
    done = {(run["setting"], run["strategy"], run["seed"]) for run in read_runs(runs_path)}
    jobs = [job for job in jobs if (job["setting"], job["strategy"], job["seed"]) not in done]
    if not jobs:
        return
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) if workers else None
    finished = (
        (future.result() for future in as_completed([pool.submit(_run_one, job) for job in jobs]))
        if pool
        else map(_run_one, jobs)
    )
    for run in finished:
        lines = [json.dumps(line) for line in read_runs(runs_path)] + [json.dumps(run)]
        write_file(runs_path, ("\n".join(lines) + "\n").encode())
        logger.info("%s / %s / seed %d: %.0f s", run["setting"], run["strategy"], run["seed"], run["wall_s"])
    if pool:
        pool.shutdown()


def read_runs(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


# ----------------------------------------------------------------------------- summarizing


def headline(run: dict[str, Any], metric: str, index: int = -1) -> float:
    """The run's headline metric at evaluation `index` (mean over evaluation skills)."""
    values = run["accuracy"][index] if metric == "mean_accuracy" else run["val_loss"][index]
    return float(np.mean(values))


def steps_to_reach(run: dict[str, Any], metric: str, target: float) -> int | None:
    """The first evaluation step at which the run is at least as good as `target`, else None."""
    for index, step in enumerate(run["steps"]):
        value = headline(run, metric, index)
        if (value <= target) if _lower_is_better(metric) else (value >= target):
            return int(step)
    return None


def summarize_setting(setting: Setting, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per strategy: final headline and per-skill values (mean, std over seeds), paired difference to
    stratified, steps to reach stratified's final headline, wall time."""
    by_strategy: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_strategy.setdefault(run["strategy"], []).append(run)
    reference = by_strategy.get("stratified", [])
    reference_final = {run["seed"]: headline(run, setting.metric) for run in reference}
    target = float(np.mean(list(reference_final.values()))) if reference_final else None
    summary = {}
    for label, strategy_runs in by_strategy.items():
        strategy_runs = sorted(strategy_runs, key=lambda run: run["seed"])
        finals = np.asarray([headline(run, setting.metric) for run in strategy_runs])
        per_skill = np.asarray([_final_per_skill(run, setting.metric) for run in strategy_runs])
        paired = [final - reference_final[run["seed"]] for run, final in zip(strategy_runs, finals)
                  if run["seed"] in reference_final]  # fmt: skip
        reached = [steps_to_reach(run, setting.metric, target) for run in strategy_runs] if target is not None else []
        summary[label] = {
            "seeds": [run["seed"] for run in strategy_runs],
            "finals": [float(value) for value in finals],
            "final_mean": float(finals.mean()),
            "final_std": float(finals.std(ddof=1)) if finals.size > 1 else 0.0,
            "per_skill_mean": per_skill.mean(axis=0).tolist(),
            "per_skill_std": (per_skill.std(axis=0, ddof=1) if len(per_skill) > 1 else 0 * per_skill[0]).tolist(),
            "difference_to_stratified": [float(value) for value in paired],
            "steps_to_stratified_final": reached,
            "wall_s_mean": float(np.mean([run["wall_s"] for run in strategy_runs])),
            "first_weights": strategy_runs[0]["weights"][:3],
        }
    return summary


def _final_per_skill(run: dict[str, Any], metric: str) -> list[float]:
    values = run["accuracy"][-1] if metric == "mean_accuracy" else run["val_loss"][-1]
    return [float(value) for value in values]


# ----------------------------------------------------------------------------- the entry point


def efficiency(
    out: str = "docs/efficiency",
    settings: list[str] | None = None,
    seeds: list[int] | None = None,
    profile: str = "full",
    workers: int = 2,
    report_path: str = "",
    strategies: list[str] | None = None,
) -> dict[str, Any]:
    """Run the benchmark (resuming from `<out>/runs.jsonl`) and write results.json, plots and the report.

    `workers` runs train at once, each in its own process with one torch thread (0: one after another
    in this process, for tests)."""
    from skillit_ray.benchmarks.efficiency_report import write_report

    chosen = [SETTINGS[profile][name] for name in (settings or list(SETTINGS[profile]))]
    if strategies:  # a subset of every setting's strategies (e.g. skillit,stratified,random)
        chosen = [dataclasses.replace(setting, strategies={label: extra for label, extra in setting.strategies.items()
                                                           if label in strategies}) for setting in chosen]  # fmt: skip
    seeds = seeds if seeds is not None else [0, 1, 2]
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {"profile": profile, "seeds": seeds, "settings": {}}
    results["runs_reused"] = len(read_runs(directory / "runs.jsonl"))  # from an earlier, interrupted call
    # phases over every setting at once (graphs, then eta tuning rounds with the settled settings' runs
    # beside them), so cores never wait at a setting's end for its last run; the settings' order (text
    # first, LEGO and addition last) puts the long runs first and the short ones at the pool's end
    bases = {setting.name: [*setting.overrides, *prepare_data(setting, directory / "data", profile)]
             for setting in chosen}  # fmt: skip
    graphs = {setting.name: learn_graph(setting, bases[setting.name], directory) for setting in chosen}
    tuned_bases = {setting.name: [*bases[setting.name], *graph_overrides(graphs[setting.name][0])]
                   for setting in chosen}  # fmt: skip
    # the candidate baselines do not depend on eta, and a setting whose eta is settled (no grid, or its
    # search has turned) trains its strategies: both run beside the next tuning round, so the cores stay busy
    batch = []
    for setting in chosen:
        batch += candidate_jobs(setting, bases[setting.name], graphs[setting.name][0])
    pending = {setting.name: list(setting.eta_grid) for setting in chosen if setting.eta_grid}
    etas: dict[str, tuple[float | None, dict]] = {}
    for extension in range(1 + MAX_EDGE_EXTENSIONS + 1):  # the grid, then one eta past its edge while it improves
        runs = read_runs(directory / "runs.jsonl")
        for setting in chosen:
            settled = setting.name not in pending or extension > MAX_EDGE_EXTENSIONS
            if settled and setting.name not in etas:
                etas[setting.name] = chosen_eta(setting, runs)
                batch += strategy_jobs(setting, bases[setting.name], seeds, graphs[setting.name][0],
                                       etas[setting.name][0])  # fmt: skip
        for setting in chosen:
            if setting.name not in etas:
                batch = tuning_jobs(setting, tuned_bases[setting.name], pending[setting.name]) + batch
        execute_runs(batch, directory, workers)
        if len(etas) == len(chosen):
            break
        runs, batch = read_runs(directory / "runs.jsonl"), []
        pending = {name: [eta] for name, eta in ((setting.name, next_eta(setting, runs)) for setting in chosen
                                                 if setting.name in pending) if eta is not None}  # fmt: skip
    runs = read_runs(directory / "runs.jsonl")
    for setting in chosen:
        (graph_json, graph_s), (eta, tuning) = graphs[setting.name], etas[setting.name]
        results["settings"][setting.name] = {
            "title": setting.title, "metric": setting.metric, "notes": setting.notes,
            "overrides": bases[setting.name], "strategies": dict(setting.strategies),
            "graph_json": graph_json, "graph_learning_s": graph_s, "tuned_eta": eta, "tuning": tuning,
            "pipeline_choice": pipeline_choice(setting, runs, eta),
            "summary": summarize_setting(setting, [run for run in runs if run["setting"] == setting.name]),
        }  # fmt: skip
    results["machine"] = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "workers": workers}
    results["wall_s"] = time.perf_counter() - started
    write_file(directory / "results.json", (json.dumps(results, indent=2) + "\n").encode())
    results["report"] = write_report(results, directory, {setting.name: setting for setting in chosen}, report_path)
    return results


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    settings = [name for name in arguments.settings.split(",") if name] or None
    seeds = [int(seed) for seed in arguments.seeds.split(",")]
    strategies = [name for name in arguments.strategies.split(",") if name] or None
    results = efficiency(
        arguments.out, settings, seeds, arguments.profile, arguments.workers, arguments.report, strategies
    )
    return {name: {label: round(entry["final_mean"], 4) for label, entry in setting["summary"].items()}
            for name, setting in results["settings"].items()}  # fmt: skip


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="docs/efficiency", help="runs, results.json and plots")
    parser.add_argument("--report", default="docs/benchmarks/efficiency.md", help="the markdown report")
    parser.add_argument("--settings", default="", help="comma-separated setting names (default all)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--strategies", default="", help="comma-separated strategies (default all)")
    parser.add_argument("--profile", choices=["full", "quick"], default="full")
    parser.add_argument("--workers", type=int, default=2, help="runs at a time (one thread each)")


BENCHMARKS = [
    Benchmark("efficiency", "every strategy x seeds in every setting: does the mixture learn faster?", run, _arguments)
]
