"""`tracking`: what the experiment trackers cost per training step.

Role in the flow: a benchmark (`python -m skillit_ray.benchmarks tracking [--steps N] [--repeats R]
[--set k=v ...]`) of `train/tracking.py`. The same in-process run (the tiny model on LEGO, one torch
thread, rank 0's `TrackingSink` as a launched run builds it) with `tracking.sinks=[jsonl]` and with
`[jsonl, mlflow, tensorboard]` (MLflow's SQLite store), interleaved A B B A ... so that a drifting
machine load falls on both; the overhead is the difference of the median wall times of the whole loop
(steps, evaluations and the flushes that wait for the trackers) per step, relative to the jsonl run's.
Building the sink (MLflow's client and SQLite engine, once per run and process) is timed apart. Less
noisy than wall times on a shared machine: the tracking thread's CPU time per step (its Python holds
the GIL) and the training thread's waits for it (flushes), both upper bounds of what tracking adds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from skillit_ray.benchmarks.registry import Benchmark, add_overrides
from skillit_ray.config.job import load_config

BASELINE_SINKS = "[jsonl]"
TRACKED_SINKS = "[jsonl, mlflow, tensorboard]"


def timed_run(sinks: str, steps: int, storage_path: str, name: str, overrides: list[str]) -> dict:
    """One in-process run with `sinks`: building the sink (a tracker's client, once per run), the loop's wall
    time (restore, steps, evaluations, flushes, close) and its training steps' tokens/s."""
    from skillit_ray.data.storage import RunStorage
    from skillit_ray.mixture.registry import strategy_from_config
    from skillit_ray.train import tracking
    from skillit_ray.train.distributed import WorkerContext
    from skillit_ray.train.loop import training_loop
    from skillit_ray.train.resolve import resolve_run
    from skillit_ray.train.sampler import MixtureSamplerState

    config = load_config(
        None,
        ["data.lego.num_variables=3", "data.num_val_per_skill=20", f"train.steps={steps}", "train.batch_size=8",
         "train.eval_every_n_steps=50", "train.log_every_n_steps=10", f"mixture.num_rounds={min(4, steps)}",
         "mixture.eta=0.5", "mixture.graph=[[1, 0, 0], [1, 1, 0], [0, 0, 1]]", f"run.storage_path={storage_path}",
         f"run.name={name}", f"tracking.sinks={sinks}", *overrides],
    )  # fmt: skip
    config, setup = resolve_run(config)
    storage = RunStorage(config.run.storage_path, config.run.name)
    tracking.open_tracker_runs(config, storage)  # the driver's part, before the run
    state = MixtureSamplerState(strategy_from_config(config, setup.train_skills, setup.eval_skills), config.train.seed)
    started = time.perf_counter()
    sink = tracking.tracking_sink(config, setup, storage)
    sink_s, started = time.perf_counter() - started, time.perf_counter()
    try:
        result = training_loop(
            config, setup, WorkerContext(0, 1, torch.device("cpu")), state, sink, write_checkpoints=False
        )
    finally:
        sink.close()
    return {"sink_s": sink_s, "loop_s": time.perf_counter() - started, "tokens_per_s": result.tokens_per_s,
            "thread_cpu_s": sink.thread_cpu_s, "waited_s": sink.waited_s}  # fmt: skip


def tracking_overhead(arguments: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    storage_path = tempfile.mkdtemp(prefix="skillit-tracking-benchmark-")
    timed_run(TRACKED_SINKS, 8, storage_path, "warm-up", arguments.overrides)  # imports, MLflow's tables
    readings: dict[str, list[dict]] = {"jsonl": [], "trackers": []}
    for repeat in range(arguments.repeats):
        order = ("jsonl", "trackers") if repeat % 2 == 0 else ("trackers", "jsonl")
        for kind in order:
            sinks = BASELINE_SINKS if kind == "jsonl" else TRACKED_SINKS
            name = f"{kind}-{repeat}"
            readings[kind].append(timed_run(sinks, arguments.steps, storage_path, name, arguments.overrides))
    loop_s = {kind: statistics.median(reading["loop_s"] for reading in runs) for kind, runs in readings.items()}
    per_step_ms = {kind: 1000 * seconds / arguments.steps for kind, seconds in loop_s.items()}
    return {
        "steps": arguments.steps,
        "repeats": arguments.repeats,
        "sinks": {"jsonl": BASELINE_SINKS, "trackers": TRACKED_SINKS},
        "median_sink_s": {
            kind: statistics.median(reading["sink_s"] for reading in runs) for kind, runs in readings.items()
        },  # fmt: skip
        "median_loop_s": loop_s,
        "per_step_ms": per_step_ms,
        "overhead_per_step_ms": per_step_ms["trackers"] - per_step_ms["jsonl"],
        "overhead_percent": 100 * (loop_s["trackers"] / loop_s["jsonl"] - 1),
        "tracking_thread_cpu_per_step_ms": {
            kind: 1000 * statistics.median(reading["thread_cpu_s"] for reading in runs) / arguments.steps
            for kind, runs in readings.items()
        },  # fmt: skip
        "training_thread_waited_per_step_ms": {
            kind: 1000 * statistics.median(reading["waited_s"] for reading in runs) / arguments.steps
            for kind, runs in readings.items()
        },  # fmt: skip
        "median_tokens_per_s": {
            kind: statistics.median(reading["tokens_per_s"] for reading in runs) for kind, runs in readings.items()
        },  # fmt: skip
        "readings": readings,
    }


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=200, help="training steps of each run")
    parser.add_argument("--repeats", type=int, default=4, help="runs of each kind, interleaved")
    add_overrides(parser)


BENCHMARKS = (
    Benchmark("tracking", "per-step cost of MLflow + TensorBoard tracking against jsonl only", tracking_overhead,
              _arguments),
)  # fmt: skip
