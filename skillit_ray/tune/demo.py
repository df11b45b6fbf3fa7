"""`make demo` / `skillit-ray demo`: the skill-ordering effect end to end on a local Ray, on a CPU.

Role in the flow: the end-to-end showcase. On the staircase chain (`skills/staircase.py`: skill i
asks for the i-th variable of an ordered chain, one XOR step beyond skill i - 1), from scratch:

1. `skillit-ray graph`: the system learns the skills graph itself, one short run per skill on Ray
   Tune (paper Algorithm 3, with the graph defaults: relative loss drops, the drop common to all
   skills removed);
2. `skillit-ray train` three times on seed 0, the same 800 steps each (Ray Train worker + sampler
   actor): Skill-it with that learned graph, skill-stratified sampling, and random (the paper's
   imbalanced style, 1:1:3:5, weighted towards the hard skills); a per-skill accuracy table, the
   comparison plot and each run's mixture and loss plots;
3. Skill-it and stratified again on seeds 1 and 2, as Ray tasks (the same loop in the task's process,
   one torch thread), one at a time beside the Ray Train runs, which use the other core; and a table of
   every seed with the difference paired by seed.

One seed is one draw: on this chain a run either learns the later steps or stays at the majority
answer, so a single seed can land either way. The seeds give the spread; the efficiency benchmark
(docs/RESULTS.md) runs every strategy.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from skillit_ray.config.job import load_config

DEMO_ETA = 1.5
"""Skill-it's eta on the learned (relative) graph, chosen from the science experiments on this setting.
The efficiency benchmark's tuning on its held-out seed later picked 0.5 (mean accuracy 0.985 against
0.962 at 1.5, one seed each; docs/benchmarks/efficiency.md); the demo's figures in docs/RESULTS.md are from 1.5."""

DEMO_SETTINGS = [
    "data.source=staircase",
    "data.staircase.num_skills=4",
    "data.staircase.chain_length=12",
    "data.staircase.negation_probability=0.25",
    "model.size=tiny",
    "train.steps=800",
    "train.batch_size=32",
    "train.learning_rate=1e-3",  # from scratch
    "train.eval_every_n_steps=40",
    "mixture.num_rounds=6",
    "mixture.window=3",
    "graph.steps=200",  # skill 1 alone is learned in 50-150 steps; 200 lets every run show its drop
    "scaling.num_workers=1",
    "scaling.cpus_per_worker=1",  # one torch thread, as in the seed tasks
    "graph.cpus_per_trial=1",
]
"""The demo's shared settings (overridable with --set)."""

SEED_RUNS = ("skillit", "stratified")
"""The strategies run again on `EXTRA_SEEDS` (Ray tasks), for the table paired by seed."""
EXTRA_SEEDS = (1, 2)

DEMO_RUNS = {
    "skillit": ["mixture.strategy=skillit", f"mixture.eta={DEMO_ETA}"],
    "stratified": ["mixture.strategy=stratified"],
    "random": ["mixture.strategy=random", "mixture.proportions=[1, 1, 3, 5]"],
}


def run_demo(out_dir: str = "runs/demo", overrides: list[str] | None = None) -> list[Path]:
    """Learn the graph, train the three runs on seed 0 and two strategies on more seeds, print both tables;
    returns the run directories of seed 0."""
    import ray

    from skillit_ray.train import report
    from skillit_ray.train.launch import connect_ray, run_training
    from skillit_ray.tune.graph_runs import learn_graph

    storage = Path(out_dir).resolve()
    shared = [*DEMO_SETTINGS, f"run.storage_path={storage}", "run.resume=false", *(overrides or [])]
    graph_config = load_config(None, [*shared, "run.name=graph", "mixture.strategy=stratified"])
    graph_json = storage / "graph" / "graph" / "graph.json"
    configs = {
        name: load_config(None, [*shared, *extra, f"run.name={name}", f"mixture.graph_path={graph_json}"])
        for name, extra in DEMO_RUNS.items()
    }  # every config is validated before Ray starts
    seed_overrides = {
        (name, seed): [*shared, *DEMO_RUNS[name], f"run.name={name}-seed{seed}", f"mixture.graph_path={graph_json}",
                       f"train.seed={seed}"]
        for name in SEED_RUNS for seed in EXTRA_SEEDS
    }  # fmt: skip
    for extra in seed_overrides.values():
        load_config(None, extra)
    for name in ["graph", *configs]:
        if (storage / name).exists():
            raise ValueError(f"{storage / name} exists from an earlier demo; remove {storage} or pass --out NEW_DIR")
    connect_ray(graph_config)
    started = time.perf_counter()
    print("=== learning the skills graph: one 200-step run per skill, in parallel on Ray Tune", flush=True)
    graph = learn_graph(graph_config)
    skills = json.loads(Path(graph["graph_json"]).read_text())["train_skills"]
    rows = "\n".join(f"  {skill}: {[round(value, 2) for value in row]}" for skill, row in zip(skills, graph["graph"]))
    print(f"learned graph (rows = trained skill, columns = evaluated skill):\n{rows}", flush=True)
    print(f"=== {' and '.join(SEED_RUNS)} on seeds {', '.join(map(str, EXTRA_SEEDS))}: Ray tasks, one at a time "
          "beside the Ray Train runs of seed 0", flush=True)  # fmt: skip
    with ThreadPoolExecutor(1) as background:  # the Ray Train worker takes one core, a seed task the other
        seed_runs = background.submit(_seed_runs, seed_overrides)
        run_directories = []
        for name, config in configs.items():
            print(f"=== {name}, seed 0: {config.train.steps} steps of {config.train.batch_size} sequences", flush=True)
            run_training(config)
            run_directories.append(storage / name)
        accuracy = {(name, 0): _final_accuracy(storage / name) for name in SEED_RUNS}
        accuracy.update(seed_runs.result())
    elapsed_seconds = time.perf_counter() - started
    print(f"\nstaircase chain, 4 skills, from scratch; the graph and {len(configs) + len(seed_overrides)} runs took "
          f"{elapsed_seconds:.0f} s\n")  # fmt: skip
    print("seed 0:")
    print(report.comparison_table(run_directories))
    print()
    print(seed_table(accuracy))
    comparison = report.plot_comparison(run_directories, storage / "comparison.png")
    print(f"\nplots: {comparison}, {storage / 'graph' / 'graph' / 'graph_heatmap.png'}, <run>/mixture_weights.png")
    ray.shutdown()
    return run_directories


def _final_accuracy(run_directory: Path) -> list[float]:
    return json.loads((run_directory / "summary.json").read_text())["per_skill_accuracy"]


def _seed_runs(seed_overrides: dict[tuple[str, int], list[str]]) -> dict[tuple[str, int], list[float]]:
    """Every (strategy, seed) run as a Ray task of one CPU, one after another; the final per-skill accuracy of
    each."""
    import ray

    @ray.remote(num_cpus=1)
    def train_in_task(overrides: list[str]) -> list[float]:
        import torch

        from skillit_ray.train.local import run_local_training

        torch.set_num_threads(1)
        return run_local_training(load_config(None, overrides))["evaluations"][-1]["accuracy"]

    results = {}
    for (name, seed), overrides in seed_overrides.items():
        results[name, seed] = ray.get(train_in_task.remote(overrides))
        per_skill = " ".join(f"{100 * value:.0f}" for value in results[name, seed])
        print(f"[{name} seed {seed}] mean accuracy {100 * np.mean(results[name, seed]):.1f}% (per skill {per_skill})",
              flush=True)  # fmt: skip
    return results


def seed_table(accuracy: dict[tuple[str, int], list[float]]) -> str:
    """Mean accuracy (%) per strategy and seed, mean +/- std over seeds, and the difference to stratified paired
    by seed (`accuracy`: (strategy, seed) -> final per-skill accuracy)."""
    names = list(dict.fromkeys(name for name, _ in accuracy))
    seeds = sorted({seed for _, seed in accuracy})
    means = {name: np.array([100 * np.mean(accuracy[name, seed]) for seed in seeds]) for name in names}

    def spread(values: np.ndarray) -> str:
        return f"{values.mean():+.1f} +/- {values.std(ddof=1) if values.size > 1 else 0.0:.1f}"

    header = f"{'strategy':<12}" + "".join(f"{'seed ' + str(seed):>9}" for seed in seeds)
    lines = ["mean accuracy (%) at the end of training, by seed; differences paired by seed",
             f"{header}{'mean +/- std':>16}{'minus stratified':>20}", "-" * (len(header) + 36)]  # fmt: skip
    for name in names:
        values = means[name]
        paired = spread(values - means["stratified"]) if "stratified" in means and name != "stratified" else ""
        lines.append(f"{name:<12}" + "".join(f"{value:9.1f}" for value in values)
                     + f"{spread(values).lstrip('+'):>16}{paired:>20}".rstrip())  # fmt: skip
    return "\n".join(lines)
