"""The search over eta, rounds and window for Skill-it on Ray Tune, and the choice among it and the baselines.

Role in the flow: graph (graph.json) -> **search** -> train (`best_config.yaml`). A Tune search over
log-uniform eta (or `tune.eta_grid`), the number of rounds and the window; each trial a short Skill-it
run in its process (repeated over `tune.seeds`), its objective the final mean validation loss (or
accuracy), ASHA stopping poor trials at evaluation points (one seed only). Where the best value of a
dimension is at the edge of what was tried, the search goes on past it (`edges.py`). Then the baselines
that apply (`tune.candidates`: stratified; target_only in fine-tuning; the given proportions; any strategy
the user lists, such as skill_curriculum) are scored by the same runs on the same seeds, and the best of
them and Skill-it's best is the choice: written as a ready-to-run YAML, with `tune/candidates.json` (who
won, by how much, Skill-it's best beside it) and every trial in `tune/trials.json`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from skillit_ray.config.job import JobConfig, config_from_dict
from skillit_ray.config.loading import choice
from skillit_ray.config.tune import CANDIDATES
from skillit_ray.data.source import SkillSetup
from skillit_ray.data.storage import RunStorage
from skillit_ray.mixture.registry import check_mixture, strategies, strategy_from_config
from skillit_ray.train import console
from skillit_ray.train.callbacks import LoopCallback
from skillit_ray.train.launch import connect_ray
from skillit_ray.train.local import run_local_training
from skillit_ray.train.resolve import resolve_run
from skillit_ray.tune.edges import DIMENSIONS, best_setting, choice_margin, extend_search
from skillit_ray.tune.progress import TrialReporter
from skillit_ray.tune.trial_tracking import PhaseTrackers, describe_setting, search_trial_record
from skillit_ray.tune.trials import trial_run_config

logger = logging.getLogger("skillit_ray")
TUNE_FILES = ("candidates.json", "trials.json")
"""Files beside best_config.yaml that the phase's MLflow run gets as artifacts."""


class TuneReport(LoopCallback):
    """Every evaluation after step 0 reported to Ray Tune (ASHA's intermediate results)."""

    def __init__(self, metric: str) -> None:
        self.metric = metric

    def on_report(self, step: int, metrics: dict[str, Any], checkpoint_directory: str | None) -> None:
        import ray.tune

        if step > 0 and "mean_val_loss" in metrics:
            value = metrics.get("mean_accuracy") if self.metric == "mean_accuracy" else metrics["mean_val_loss"]
            ray.tune.report({"objective": value, "step": step, "final": False})


def _final_evaluation(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """The last evaluation's per-skill losses (and accuracies) averaged over the seeds."""
    last = [records["evaluations"][-1] for records in per_seed]
    accuracy = [evaluation["accuracy"] for evaluation in last if evaluation["accuracy"] is not None]
    return {"val_loss": np.mean([evaluation["val_loss"] for evaluation in last], axis=0).tolist(),
            "accuracy": np.mean(accuracy, axis=0).tolist() if len(accuracy) == len(last) else None}  # fmt: skip


def _objective(records: dict[str, Any], metric: str) -> float:
    last = records["evaluations"][-1]
    if metric == "mean_accuracy":
        if last["accuracy"] is None:
            raise ValueError("tune.metric=mean_accuracy needs skills with accuracy (LEGO/addition)")
        return float(np.mean(last["accuracy"]))
    return float(np.mean(last["val_loss"]))


def apply_setting(config: JobConfig, setting: dict[str, Any], train_skills: list[str]) -> JobConfig:
    """The config of one candidate: Skill-it at (eta, rounds, window), or a baseline strategy."""
    strategy = setting.get("strategy", "skillit")
    if strategy == "skillit":
        config.mixture.eta = float(setting["eta"])
        config.mixture.num_rounds = int(setting["num_rounds"])
        config.mixture.window = int(setting["window"])
    elif strategy == "target_only":
        targets = set(config.mixture.target_skills or config.data.eval_skills)
        config.mixture.strategy = "target_only"
        config.mixture.proportions = [1.0 if skill in targets else 0.0 for skill in train_skills]
    elif strategy == "proportions":
        config.mixture.strategy = "random"  # the given fixed mixture
    else:
        config.mixture.strategy = strategy
    return config


def _tune_trial(trial_config: dict[str, Any]) -> None:
    import ray.tune

    base = config_from_dict(trial_config["config"])
    setting = trial_config.get("setting") or {name: trial_config[name] for name in DIMENSIONS}
    per_seed = []
    for seed in base.tune.seeds:
        config = apply_setting(trial_run_config(base), setting, trial_config["train_skills"])
        config.train.seed = int(seed)
        config.validate()
        reports = len(base.tune.seeds) == 1 and "setting" not in trial_config  # ASHA sees the first search only
        per_seed.append(run_local_training(config, [TuneReport(base.tune.metric)] if reports else []))
    objectives = [_objective(records, base.tune.metric) for records in per_seed]
    ray.tune.report({"objective": float(np.mean(objectives)), "per_seed": objectives, "final": True,
                     **_final_evaluation(per_seed)})  # fmt: skip


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


def candidate_settings(config: JobConfig) -> list[dict[str, Any]]:
    """The baselines the search scores beside Skill-it's best (`tune.candidates`): the tuner's own names
    (`config/tune.py:CANDIDATES`) or any registered strategy; an unknown name lists them all."""
    names: list[str] = []
    for candidate in config.tune.candidates:
        choice("tune.candidates entry", candidate, list(dict.fromkeys([*CANDIDATES, *strategies()])))
        if candidate == "auto":
            names += ["stratified"] + (["target_only"] if config.mixture.setting == "finetuning" else [])
            names += ["proportions"] if config.mixture.proportions else []
        elif candidate != "skillit":
            names.append(candidate)
    if "proportions" in names and not config.mixture.proportions:
        raise ValueError("tune.candidates has proportions but mixture.proportions is empty; give the mixture")
    return [{"strategy": name} for name in dict.fromkeys(names)]


def checked_candidates(config: JobConfig, train_skills: list[str]) -> list[dict[str, Any]]:
    """`candidate_settings`, each checked as the run it will be (its proportions, its options), before Ray starts."""
    baselines = candidate_settings(config)
    for baseline in baselines:
        check_mixture(apply_setting(copy.deepcopy(config), baseline, train_skills))
    return baselines


class TrialRunner:
    """Runs settings as Ray Tune trials (one per setting, every seed in it) and returns their results; each fit
    shows its trials on progress lines labelled "tune <fit>" and logs them to the phase's trackers."""

    def __init__(
        self, config: JobConfig, setup: SkillSetup, storage: RunStorage, mode: str, trackers: PhaseTrackers
    ) -> None:
        self.config, self.train_skills, self.storage, self.mode = config, setup.train_skills, storage, mode
        self.eval_skills, self.trackers = setup.eval_skills, trackers
        self.fits = 0

    def fit(self, param_space: dict[str, Any], num_samples: int = 1, scheduler=None,
            label: str = "search") -> list[dict[str, Any]]:  # fmt: skip
        from ray import tune

        config = self.config
        describe = functools.partial(search_trial_record, config, self.eval_skills, label)
        tuner = tune.Tuner(
            tune.with_resources(_tune_trial, {"cpu": config.tune.cpus_per_trial, "gpu": config.tune.gpus_per_trial}),
            param_space={**param_space, "train_skills": self.train_skills},
            tune_config=tune.TuneConfig(
                metric="objective",
                mode=self.mode,
                num_samples=num_samples,
                scheduler=scheduler,
                max_concurrent_trials=config.tune.max_concurrent_trials or None,
            ),  # fmt: skip
            run_config=tune.RunConfig(
                name=f"{config.run.name}-tune-{self.fits}",
                storage_path=self.storage.train_storage_path(),
                callbacks=[TrialReporter(f"tune {label}", describe, self.trackers)],
                **console.tune_run_options(),
            ),  # fmt: skip
        )
        self.fits += 1
        with console.quiet_tune_output():
            found = tuner.fit()
        results = []
        for result in found:
            setting = result.config.get("setting") or {name: result.config[name] for name in DIMENSIONS}
            metrics = result.metrics or {}
            results.append({"strategy": "skillit", **setting, "objective": metrics.get("objective"),
                            "per_seed": metrics.get("per_seed"), "finished": bool(metrics.get("final")),
                            "error": str(result.error) if result.error else None})  # fmt: skip
        return results

    def run_settings(self, settings: list[dict[str, Any]], label: str = "edge") -> list[dict[str, Any]]:
        from ray import tune

        found = self.fit({"config": self.config.to_dict(), "setting": tune.grid_search(settings)}, label=label)
        return [result for result in found if result["finished"]]


def tune_hyperparameters(config: JobConfig) -> dict[str, Any]:
    """Search eta (log scale), rounds and window for Skill-it, past the grid's edges while the objective
    improves; score the baselines on the same seeds; write the winner as best_config.yaml. Each trial goes to
    the trackers of `tracking.sinks` and a progress line; the choice is one line."""
    config, setup = resolve_run(config)
    config.tune.validate_for_steps(config.train.steps)
    strategy_from_config(config, setup.train_skills, setup.eval_skills)  # graph and strategy errors before any trial
    baselines = checked_candidates(config, setup.train_skills)
    trackers = PhaseTrackers(config, "tune")  # a bad tracking URI fails before Ray starts
    connect_ray(config)
    try:
        outcome = _search(config, setup, baselines, trackers)
    except BaseException:
        trackers.finish([], failed=True)
        raise
    files = [outcome["best_config"], *(str(Path(outcome["best_config"]).with_name(name)) for name in TUNE_FILES)]
    choice = outcome["choice"]
    params = {"choice.winner": choice["winner"], "choice.metric": choice["metric"]}
    metrics = {"choice/objective": choice["objective"], "choice/num_trials": outcome["num_trials"]}
    trackers.finish(files, failed=False, params=params, metrics=metrics)
    return outcome


def _search(
    config: JobConfig, setup: SkillSetup, baselines: list[dict[str, Any]], trackers: PhaseTrackers
) -> dict[str, Any]:
    """The search, the edges and the baselines as Tune fits; the choice written to the run directory."""
    from ray.tune.schedulers import ASHAScheduler

    mode = "max" if config.tune.metric == "mean_accuracy" else "min"
    scheduler = None
    if config.tune.use_asha and len(config.tune.seeds) == 1:
        max_reports = max(1, config.train.steps // config.train.eval_every_n_steps + config.mixture.num_rounds + 1)
        scheduler = ASHAScheduler(max_t=max_reports, grace_period=max(1, max_reports // 4), reduction_factor=2)
    storage = RunStorage(config.run.storage_path, config.run.name)
    runner = TrialRunner(config, setup, storage, mode, trackers)
    results = runner.fit(search_space(config), 1 if config.tune.eta_grid else config.tune.num_samples, scheduler)
    errors = [result["error"] for result in results if result["error"]]
    if len(errors) == len(results):
        raise RuntimeError(f"every tuning trial failed; first error: {errors[0]}")
    finished = [result for result in results if result["finished"]]
    if not finished:
        raise RuntimeError("no tuning trial finished (ASHA stopped them all?); raise tune.num_samples")
    searched = len(finished)
    if config.tune.extend_at_edges:
        bounds = {"eta": tuple(config.tune.eta_bounds), "num_rounds": (1, config.train.steps),
                  "window": (1, config.train.steps)}  # fmt: skip
        grids = ["eta"] if config.tune.eta_grid else []  # a log-uniform eta has no grid edge to follow
        finished = extend_search(finished, runner.run_settings, mode, config.tune.edge_factor, bounds,
                                 config.tune.max_edge_extensions, [*grids, "num_rounds", "window"])  # fmt: skip
    skillit_best = best_setting(finished, mode)
    scored = runner.run_settings(baselines, label="baselines") if baselines else []
    winner = best_setting([skillit_best, *scored], mode) if "skillit" in _named(config) else best_setting(scored, mode)
    best_config = apply_setting(copy.deepcopy(config), winner, setup.train_skills)
    best_path = storage.write_text("tune/best_config.yaml", yaml.safe_dump(_plain(best_config), sort_keys=False))
    choice = {"winner": describe_setting(winner), "objective": winner["objective"],
              "skillit_best": describe_setting(skillit_best), "skillit_objective": skillit_best["objective"],
              "metric": config.tune.metric, "mode": mode, "seeds": config.tune.seeds,
              "candidates": {describe_setting(result): result["objective"]
                             for result in [skillit_best, *scored]}}  # fmt: skip
    choice.update(choice_margin(choice["candidates"], choice["winner"], mode))
    storage.write_text("tune/candidates.json", json.dumps(choice, indent=2))
    storage.write_text("tune/trials.json", json.dumps([*results, *finished[len(results) :], *scored], indent=2))
    logger.info("[tune] %s: %s", choice_line(choice), best_path)
    return {
        "best": {"eta": best_config.mixture.eta, "num_rounds": best_config.mixture.num_rounds,
                 "window": best_config.mixture.window, "strategy": best_config.mixture.strategy,
                 "objective": winner["objective"]},
        "choice": choice,
        "best_config": best_path,
        "config": best_config,
        "num_trials": len(results) + len(finished) - searched + len(scored),
        "num_errors": len(errors),
    }  # fmt: skip


def choice_line(choice: dict[str, Any]) -> str:
    """The choice in one line: the winner, the runner-up and by how much, Skill-it's best when it is neither."""
    objectives, winner, runner_up = choice["candidates"], choice["winner"], choice["runner_up"]
    line = f"the choice is {winner} ({choice['metric']} {objectives[winner]:.4f})"
    if runner_up:
        line += f", ahead of {runner_up} ({objectives[runner_up]:.4f}) by {choice['margin']:.4f}"
    if choice["skillit_best"] not in (winner, runner_up):
        line += f"; Skill-it's best {choice['skillit_best']} {objectives[choice['skillit_best']]:.4f}"
    return line


def _named(config: JobConfig) -> set[str]:
    return {"skillit" if name == "auto" else name for name in config.tune.candidates}


def _plain(config: JobConfig) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config)))
