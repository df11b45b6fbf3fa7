"""`python -m skillit_ray.benchmarks throughput`: the full pipeline against a plain PyTorch loop, one run.

Role in the flow: a benchmark beside the product (not a test); `benchmark.py` parses, this measures.

Tokens/s (sequence positions per second, all workers) of `run_training` (Ray Train worker, sampler
actor, per-skill streams, exact quotas, evaluation excluded from the timed steps) against a plain
PyTorch loop on the same model and batch shape with pre-made random tokens (no data, no Ray), in the
same process tree; every figure leaves out its first 5 steps (warm-up, compilation). In order:

1. the plain loop in this process before Ray starts, then our own training loop in this process
   without Ray (local sampler state): what the loop costs (batch assembly, quotas, normalization);
   then the same cost without the drift (`interleaved_step_costs`): the plain step, our train step
   on ready rows and our train step with its batch assembled in line, alternated step by step;
2. the plain loop again with the local Ray up: what an idle Ray costs the host;
3. `repeats` times: the plain loop inside a Ray Train worker (its thread, environment and
   niceness; one worker), the full pipeline, then the plain loop in this process again.

The host drifts by 5-20% between readings of the same loop (between consecutive 13 s readings too),
so one pipeline run against one plain reading says little. Each pipeline run (and each plain loop in
a worker) is divided by the mean of the two plain readings on either side of it, and by the plain
loop in a worker just before it; the medians over repeats are the headline, with every reading kept
in the JSON. The first pipeline run is also timed end to end (start-up and evaluations
included) and the CPU seconds of every process during it are read, so no ratio hides where the time
goes.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from functools import partial
from typing import Any

from skillit_ray.benchmarks.registry import Benchmark, add_overrides
from skillit_ray.config.job import JobConfig, load_config

THROUGHPUT_DEFAULTS = [
    "data.lego.num_variables=5",
    "data.sequence_length=40",
    "model.size=small",
    "train.steps=200",
    "train.batch_size=32",
    "train.eval_every_n_steps=100",
    "mixture.num_rounds=2",
    "mixture.graph=[[1,0,0,0,0],[1,1,1,1,0],[0,0,1,0,0],[0,0,0,1,0],[0,0,0,0,1]]",
    "mixture.graph_preprocessing=paper_binary",
    "run.name=benchmark",
    "run.resume=false",
]


def benchmark_device(config: JobConfig):
    """The run's device; on CPU, this process's torch threads set to the worker's cores."""
    import torch

    device = torch.device("cuda" if config.scaling.use_gpu and torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(max(1, int(config.scaling.cpus_per_worker)))
    return device


def plain_training_step(config: JobConfig, vocab_size: int, device):
    """The reference step: the same model and batch shape, random tokens, AdamW; returns a callable that
    runs one step."""
    import torch

    from skillit_ray.train.model import build_model, next_token_losses
    from skillit_ray.train.step import build_optimizer

    model = build_model(config.model.size, vocab_size, config.data.sequence_length, overrides=config.model.overrides)
    model = model.to(device)
    optimizer = build_optimizer(model, config)
    if config.train.compile:
        model = torch.compile(model)
    batch = torch.randint(3, vocab_size, (config.train.batch_size, config.data.sequence_length), device=device)
    autocast = config.train.autocast_bf16(device.type)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(input_ids=batch).logits
        loss = next_token_losses(logits, batch, reduction="mean")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip_norm)
        optimizer.step()

    return step


def plain_pytorch_tokens_per_s(config: JobConfig, vocab_size: int, warmup_steps: int = 5) -> dict[str, float]:
    """The reference: the plain step in a loop, no Ray, no data pipeline."""
    import torch

    device = benchmark_device(config)
    step = plain_training_step(config, vocab_size, device)
    timed_steps = config.train.steps
    for index in range(warmup_steps + timed_steps):
        if index == warmup_steps:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    positions = config.train.batch_size * config.data.sequence_length
    return {"tokens_per_s": timed_steps * positions / elapsed, "seconds": elapsed, "steps": timed_steps}


def interleaved_step_costs(config: JobConfig, steps: int, warmup_steps: int = 5) -> dict[str, float]:
    """Our step against the plain one in this process, alternated step by step so the host's drift cancels.

    Each round runs, in turn: the plain step; our `train_step` (and scheduler) on rows assembled
    beforehand; and our `train_step` after assembling its rows in line (`QuotaPlan.batch`, uniform
    weights). Returns each kind's summed time relative to the plain steps' (CPU or one GPU)."""
    import torch

    from skillit_ray.data.sources.registry import load_skill_tokenizer
    from skillit_ray.train import distributed
    from skillit_ray.train.plans import QuotaPlan
    from skillit_ray.train.resolve import resolve_run
    from skillit_ray.train.step import build_training_parts, train_step

    config, setup = resolve_run(config)
    device = benchmark_device(config)
    tokenizer = load_skill_tokenizer(setup)
    context = distributed.WorkerContext(0, 1, device)
    plan = QuotaPlan(config, setup, tokenizer, context)
    schedule = plan.schedule(0, [1 / len(setup.train_skills)] * len(setup.train_skills), config.train.seed)
    steps_in_schedule = len(schedule) // config.train.batch_size
    prepared = [plan.batch(schedule, index, index)[0] for index in range(min(steps_in_schedule, 20))]
    parts = {kind: build_training_parts(config, len(tokenizer), device) for kind in ("prepared", "assembled")}
    autocast = config.train.autocast_bf16(device.type)

    def ours(kind: str, index: int) -> None:
        model, optimizer, scheduler = parts[kind]
        if kind == "prepared":
            rows = prepared[index % len(prepared)]
        else:
            rows = plan.batch(schedule, index % steps_in_schedule, index % steps_in_schedule)[0]
        train_step(model, optimizer, rows, tokenizer.pad_token_id, config, context, autocast)
        scheduler.step()

    plain = plain_training_step(config, len(tokenizer), device)
    kinds = {"plain": lambda index: plain(), **{kind: partial(ours, kind) for kind in parts}}
    seconds = dict.fromkeys(kinds, 0.0)
    for index in range(warmup_steps + steps):
        for kind, run_step in kinds.items():
            started = time.perf_counter()
            run_step(index)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if index >= warmup_steps:
                seconds[kind] += time.perf_counter() - started
    return {
        "steps": steps,
        "plain_step_ms": round(1000 * seconds["plain"] / steps, 2),
        "ratio_train_step_over_plain": round(seconds["plain"] / seconds["prepared"], 4),
        "ratio_train_step_with_assembly_over_plain": round(seconds["plain"] / seconds["assembled"], 4),
    }


def _plain_loop_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point: the plain loop, its figure reported with a one-file checkpoint (Ray Train
    returns a run's metrics only with a checkpoint)."""
    import json

    import ray.train

    from skillit_ray.config.job import config_from_dict

    result = plain_pytorch_tokens_per_s(config_from_dict(loop_config["config"]), loop_config["vocab_size"])
    with tempfile.TemporaryDirectory() as directory:
        with open(os.path.join(directory, "plain.json"), "w") as handle:
            json.dump(result, handle)
        ray.train.report(result, checkpoint=ray.train.Checkpoint.from_directory(directory))


def plain_loop_in_train_worker(config: JobConfig, vocab_size: int, name: str) -> float:
    """Tokens/s of the plain loop inside one Ray Train worker with the run's resources (no data, no sampler)."""
    import ray.train
    from ray.train.torch import TorchTrainer

    scaling = config.scaling
    trainer = TorchTrainer(
        _plain_loop_worker,
        train_loop_config={"config": config.to_dict(), "vocab_size": vocab_size},
        scaling_config=ray.train.ScalingConfig(
            num_workers=1,
            use_gpu=scaling.use_gpu,
            resources_per_worker={
                "CPU": scaling.cpus_per_worker,
                **({"GPU": scaling.gpus_per_worker} if scaling.use_gpu else {}),
            },
        ),
        run_config=ray.train.RunConfig(name=name, storage_path=config.run.storage_path),
    )
    return float(trainer.fit().metrics["tokens_per_s"])


class ProcessCpuSampler:
    """CPU seconds (user + system) each process on this machine uses while it runs, by process role.

    A thread reads every process's CPU times once a second and keeps the last reading per process id,
    so processes that exit before the end (the Train worker, the controller) still count up to their
    last second. Roles: `ray::<Actor>` for Ray workers, the script name for Ray's Python daemons
    (dashboard, its agent, log monitor), the executable otherwise, `driver` for this process.
    """

    def __init__(self, interval_s: float = 1.0) -> None:
        import importlib
        import threading

        importlib.import_module("ray")  # puts Ray's vendored psutil on the import path

        self.interval_s, self.first, self.last = interval_s, self._read(), {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ProcessCpuSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()
        self.last.update(self._read())

    def _sample(self) -> None:
        while not self.stopped.wait(self.interval_s):
            self.last.update(self._read())

    @staticmethod
    def _read() -> dict[int, tuple[str, float]]:
        import psutil

        readings = {}
        for process in psutil.process_iter():
            try:
                times, command = process.cpu_times(), process.cmdline() or [process.name()]
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            readings[process.pid] = (_process_role(process.pid, command), times.user + times.system)
        return readings

    def seconds_by_role(self, minimum_s: float = 0.1) -> dict[str, float]:
        """CPU seconds used between start and stop, per role, largest first (roles under `minimum_s` left out)."""
        by_role: dict[str, float] = {}
        for pid, (role, seconds) in self.last.items():
            used = seconds - self.first.get(pid, (role, 0.0))[1]
            by_role[role] = by_role.get(role, 0.0) + used
        return {role: round(seconds, 1) for role, seconds in sorted(by_role.items(), key=lambda item: -item[1])
                if seconds >= minimum_s}  # fmt: skip


def _process_role(pid: int, command: list[str]) -> str:
    if pid == os.getpid():
        return "driver"
    first = command[0]
    if first.startswith("ray::"):
        return first.split(" ")[0].split(".")[0]
    scripts = [os.path.basename(part) for part in command[1:3] if part.endswith(".py")]
    return scripts[0] if scripts else os.path.basename(first)


def throughput(overrides: list[str], repeats: int = 3) -> dict:
    """Every reading in the order taken, the ratios against the adjacent plain readings, their medians."""
    from skillit_ray.data.sources.registry import load_skill_tokenizer, resolve_skills
    from skillit_ray.train.launch import connect_ray, run_training
    from skillit_ray.train.local import run_local_training

    if repeats < 1:
        raise ValueError(f"--repeats {repeats}: the benchmark needs at least one pipeline run; use 1 or more")
    storage = tempfile.mkdtemp(prefix="skillit-benchmark-")
    config = load_config(None, THROUGHPUT_DEFAULTS + [f"run.storage_path={storage}"] + overrides)
    vocab_size = len(load_skill_tokenizer(resolve_skills(config)))
    plain = [plain_pytorch_tokens_per_s(config, vocab_size)["tokens_per_s"]]  # before Ray
    in_process = run_local_training(config, use_gpu=config.scaling.use_gpu)
    interleaved = interleaved_step_costs(config, steps=min(100, config.train.steps))
    connect_ray(config)
    plain.append(plain_pytorch_tokens_per_s(config, vocab_size)["tokens_per_s"])  # what an idle Ray costs the host
    in_worker, pipeline, first_run = [], [], {}
    for repeat in range(repeats):
        in_worker.append(plain_loop_in_train_worker(config, vocab_size, f"plain-in-worker-{repeat}"))
        run = dataclasses.replace(config.run, name=f"{config.run.name}-{repeat}")  # a run directory per repeat
        run_config = dataclasses.replace(config, run=run)
        started = time.perf_counter()
        with ProcessCpuSampler() as cpu:
            pipeline.append(run_training(run_config))
        if repeat == 0:
            first_run = {"end_to_end_s": time.perf_counter() - started, "cpu": cpu.seconds_by_role()}
        plain.append(plain_pytorch_tokens_per_s(config, vocab_size)["tokens_per_s"])
    adjacent = [(plain[repeat + 1] + plain[repeat + 2]) / 2 for repeat in range(repeats)]
    pipeline_tokens = [run["tokens_per_s"] for run in pipeline]
    pipeline_ratios = [tokens / reference for tokens, reference in zip(pipeline_tokens, adjacent)]
    worker_ratios = [tokens / reference for tokens, reference in zip(in_worker, adjacent)]
    # the same kind of process (a Train worker with Ray Train's actors up), taken just before each pipeline run
    pipeline_over_worker = [tokens / reference for tokens, reference in zip(pipeline_tokens, in_worker)]
    median_plain = statistics.median(plain)
    median_pipeline = statistics.median(pipeline_tokens)
    assembly_s, waiting_s, step_s = (sum(run[key] for run in pipeline)
                                     for key in ("batch_assembly_s", "batch_waiting_s", "train_step_s"))  # fmt: skip
    positions = config.train.steps * config.train.batch_size * config.data.sequence_length
    return {
        "benchmark": "throughput",
        "model": config.model.size,
        "batch_size": config.train.batch_size,
        "sequence_length": config.data.sequence_length,
        "steps": config.train.steps,
        "num_workers": config.scaling.num_workers,
        "device": "cuda" if config.scaling.use_gpu else "cpu",
        "repeats": repeats,
        # every reading in the order taken: before Ray, with Ray up, then one after each pipeline run
        "plain_readings_tokens_per_s": [round(value, 1) for value in plain],
        "plain_in_train_worker_tokens_per_s": [round(value, 1) for value in in_worker],
        "pipeline_runs_tokens_per_s": [round(value, 1) for value in pipeline_tokens],
        "loop_without_ray_tokens_per_s": round(in_process["tokens_per_s"], 1),
        # the headline: each run against the mean of the plain readings just before and after it
        "ratio_pipeline_over_adjacent_plain": [round(value, 3) for value in pipeline_ratios],
        "ratio_pipeline_over_adjacent_plain_median": round(statistics.median(pipeline_ratios), 3),
        "ratio_plain_in_worker_over_adjacent_plain": [round(value, 3) for value in worker_ratios],
        "ratio_plain_in_worker_over_adjacent_plain_median": round(statistics.median(worker_ratios), 3),
        "ratio_pipeline_over_plain_in_worker_before": [round(value, 3) for value in pipeline_over_worker],
        "ratio_pipeline_over_plain_in_worker_before_median": round(statistics.median(pipeline_over_worker), 3),
        "ratio_loop_without_ray_over_plain_before_ray": round(in_process["tokens_per_s"] / plain[0], 3),
        # drift-free: our step and the plain one alternated step by step in this process, before Ray
        "interleaved_in_process": interleaved,
        "ratio_plain_with_ray_up_over_plain_before_ray": round(plain[1] / plain[0], 3),
        "pipeline_tokens_per_s": round(median_pipeline, 1),
        "ratio_pipeline_median_over_plain_median": round(median_pipeline / median_plain, 3),
        "plain_spread_over_median": round((max(plain) - min(plain)) / median_plain, 3),
        "pipeline_batch_assembly_share": round(assembly_s / max(step_s, 1e-9), 3),
        "pipeline_assembly_on_critical_path": round(waiting_s / max(assembly_s, 1e-9), 3),
        "pipeline_end_to_end_s": round(first_run["end_to_end_s"], 1),
        "pipeline_end_to_end_tokens_per_s": round(positions / first_run["end_to_end_s"], 1),
        # where the machine's CPU went during the first pipeline run (start-up and evaluation included)
        "pipeline_cpu_seconds_by_process": first_run["cpu"],
        "cpu_count": os.cpu_count(),
    }


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=3, help="plain / worker / pipeline rounds")
    add_overrides(parser)


BENCHMARKS = [
    Benchmark(
        "throughput",
        "the full pipeline's tokens/s against a plain PyTorch loop, repeated",
        lambda arguments: throughput(arguments.overrides, arguments.repeats),
        _arguments,
    )
]
