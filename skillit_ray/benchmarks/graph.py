"""`graph`: the skills graph's short runs one after another in the driver, then in parallel on Ray Tune.

Role in the flow: a benchmark (`python -m skillit_ray.benchmarks graph [--set k=v ...]`) of
`tune/graph_runs.py`. The k (linear) or k + k(k-1)/2 (brute force) short runs in one process, then on
Ray Tune: every run in one trial on one slot (one core), one run per trial (every trial pays a process
start-up), and the runs batched into one trial per slot (`graph.runs_per_trial=0`: start-up paid once
per slot), with one slot per core. The slots' own speed-up is printed beside its bound.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile

from skillit_ray.benchmarks.registry import Benchmark, add_overrides
from skillit_ray.config.job import load_config


def graph_speedup(overrides: list[str]) -> dict:
    from skillit_ray.train.launch import connect_ray
    from skillit_ray.tune.graph_runs import learn_graph, run_short_runs_sequentially

    storage = tempfile.mkdtemp(prefix="skillit-graph-benchmark-")
    config = load_config(
        None,
        ["data.lego.num_variables=3", "data.sequence_length=24", "graph.steps=60", "graph.measure_at_step=0",
         "train.batch_size=16", "data.num_val_per_skill=50", "graph.cpus_per_trial=1", f"run.storage_path={storage}",
         "run.name=graph-benchmark"] + overrides,
    )  # fmt: skip
    sequential = run_short_runs_sequentially(config)
    connect_ray(config)
    slots = max(1, os.cpu_count() or 1)  # one trial slot per core (the local Ray reports more CPUs than cores)

    def tune_layout(name: str, runs_per_trial: int, max_concurrent: int) -> dict:
        graph = dataclasses.replace(config.graph, runs_per_trial=runs_per_trial, max_concurrent_trials=max_concurrent)
        run = dataclasses.replace(config.run, name=f"{config.run.name}-{name}")
        return learn_graph(dataclasses.replace(config, graph=graph, run=run))

    one_slot = tune_layout("one-slot", 0, 1)  # every run in one trial: one start-up, one core
    one_per_trial = tune_layout("one-per-trial", 1, slots)  # every run pays a trial start-up
    batched = tune_layout("batched", 0, slots)  # one trial per slot: start-up paid once per slot
    sequential_s, one_slot_s = sequential["sequential_wall_s"], one_slot["parallel_wall_s"]
    num_runs = batched["num_runs"]
    return {
        "benchmark": "graph",
        "method": config.graph.method,
        "num_runs": num_runs,
        "steps_per_run": config.graph.steps,
        "trial_slots": slots,
        "sequential_wall_s": round(sequential_s, 1),
        "tune_one_slot_wall_s": round(one_slot_s, 1),
        "tune_one_run_per_trial_wall_s": round(one_per_trial["parallel_wall_s"], 1),
        "tune_batched_trials": batched["num_trials"],
        "tune_batched_wall_s": round(batched["parallel_wall_s"], 1),
        # against the sequential driver (torch's threads already use every core) ...
        "speedup_one_run_per_trial": round(sequential_s / one_per_trial["parallel_wall_s"], 2),
        "speedup_batched": round(sequential_s / batched["parallel_wall_s"], 2),
        # ... and against one trial slot: what the slots themselves buy, bounded by runs / ceil(runs / slots)
        "speedup_batched_over_one_slot": round(one_slot_s / batched["parallel_wall_s"], 2),
        "speedup_bound_over_one_slot": round(num_runs / math.ceil(num_runs / slots), 2),
        "cpu_count": os.cpu_count(),
    }


BENCHMARKS = [
    Benchmark(
        "graph",
        "Tune-parallel graph runs against the same runs one after another",
        lambda arguments: graph_speedup(arguments.overrides),
        add_overrides,
    )
]
