"""Benchmarks that print JSON (performance claims live here, never in timed unit tests).

Role in the flow: measures the whole system against plain PyTorch in the same run.

    python -m skillit_ray.benchmark throughput [--set k=v ...]   full pipeline vs a plain loop
    python -m skillit_ray.benchmark graph [--set k=v ...]        Tune-parallel graph runs vs sequential

`throughput`: tokens/s (sequence positions per second, all workers) of `run_training` (Ray Train
worker, sampler actor, per-skill streams, exact quotas, evaluation excluded from the timed steps)
divided by a plain PyTorch loop on the same model and batch shapes with pre-made random tokens, in
the same process tree and run; both leave out their first 5 steps (warm-up, compilation). Between
the two it times the same training loop in the driver process without Ray (local sampler state),
and the plain loop again once Ray is up, so the gap splits into what the loop costs (batch
assembly, quotas, loss normalization), what an idle Ray costs the host, and the rest. It also
reports the end-to-end figure including start-up and the per-skill evaluations, so the ratio cannot
hide where the time goes.

`graph`: wall time of the k (linear) or k + k(k-1)/2 (brute force) short runs on Ray Tune divided by
the same runs one after another in the driver process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

from skillit_ray.config import JobConfig, load_config

THROUGHPUT_DEFAULTS = [
    "data.lego_num_variables=5",
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


def plain_pytorch_tokens_per_s(config: JobConfig, vocab_size: int, warmup_steps: int = 5) -> dict[str, float]:
    """The reference: the same model and batch shape, random tokens, AdamW, no Ray, no data pipeline."""
    import torch

    from skillit_ray.model import build_model
    from skillit_ray.train import build_optimizer

    device = torch.device("cuda" if config.scaling.use_gpu and torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(max(1, int(config.scaling.cpus_per_worker)))
    model = build_model(config.model.size, vocab_size, config.data.sequence_length, overrides=config.model.overrides)
    model = model.to(device)
    optimizer = build_optimizer(model, config)
    if config.train.compile:
        model = torch.compile(model)
    batch = torch.randint(3, vocab_size, (config.train.batch_size, config.data.sequence_length), device=device)
    autocast = device.type == "cuda" and config.train.precision in ("auto", "bf16")
    timed_steps = config.train.steps
    for step in range(warmup_steps + timed_steps):
        if step == warmup_steps:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(input_ids=batch).logits
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1)
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip_norm)
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    return {"tokens_per_s": timed_steps * batch.numel() / elapsed, "seconds": elapsed, "steps": timed_steps}


def throughput(overrides: list[str]) -> dict:
    from skillit_ray.cli import connect_ray
    from skillit_ray.data import load_skill_tokenizer, resolve_skills
    from skillit_ray.train import run_training
    from skillit_ray.tune import run_local_training

    storage = tempfile.mkdtemp(prefix="skillit-benchmark-")
    config = load_config(None, THROUGHPUT_DEFAULTS + [f"run.storage_path={storage}"] + overrides)
    vocab_size = len(load_skill_tokenizer(resolve_skills(config)))
    plain = plain_pytorch_tokens_per_s(config, vocab_size)
    in_process = run_local_training(config, use_gpu=config.scaling.use_gpu)
    connect_ray(config)
    plain_with_ray_up = plain_pytorch_tokens_per_s(config, vocab_size)  # what an idle Ray costs the host
    started = time.perf_counter()
    summary = run_training(config)
    end_to_end_s = time.perf_counter() - started
    positions = config.train.steps * config.train.batch_size * config.data.sequence_length
    return {
        "benchmark": "throughput",
        "model": config.model.size,
        "batch_size": config.train.batch_size,
        "sequence_length": config.data.sequence_length,
        "steps": config.train.steps,
        "num_workers": config.scaling.num_workers,
        "device": "cuda" if config.scaling.use_gpu else "cpu",
        "plain_pytorch_tokens_per_s": round(plain["tokens_per_s"], 1),
        "pipeline_tokens_per_s": round(summary["tokens_per_s"], 1),
        "ratio_pipeline_over_plain": round(summary["tokens_per_s"] / plain["tokens_per_s"], 3),
        "plain_pytorch_with_ray_up_tokens_per_s": round(plain_with_ray_up["tokens_per_s"], 1),
        "loop_without_ray_tokens_per_s": round(in_process["tokens_per_s"], 1),
        "ratio_loop_without_ray_over_plain": round(in_process["tokens_per_s"] / plain["tokens_per_s"], 3),
        "pipeline_batch_assembly_share": round(summary["batch_assembly_s"] / summary["train_step_s"], 3),
        "pipeline_end_to_end_s": round(end_to_end_s, 1),
        "pipeline_end_to_end_tokens_per_s": round(positions / end_to_end_s, 1),
        "cpu_count": os.cpu_count(),
    }


def graph_speedup(overrides: list[str]) -> dict:
    from skillit_ray.cli import connect_ray
    from skillit_ray.tune import learn_graph, run_short_runs_sequentially

    storage = tempfile.mkdtemp(prefix="skillit-graph-benchmark-")
    config = load_config(
        None,
        ["data.lego_num_variables=3", "data.sequence_length=24", "graph.steps=60", "graph.measure_at_step=0",
         "train.batch_size=16", "data.num_val_per_skill=50", "graph.cpus_per_trial=1", f"run.storage_path={storage}",
         "run.name=graph-benchmark"] + overrides,
    )  # fmt: skip
    sequential = run_short_runs_sequentially(config)
    connect_ray(config)
    parallel = learn_graph(config)
    return {
        "benchmark": "graph",
        "method": config.graph.method,
        "num_runs": parallel["num_runs"],
        "steps_per_run": config.graph.steps,
        "sequential_wall_s": round(sequential["sequential_wall_s"], 1),
        "tune_parallel_wall_s": round(parallel["parallel_wall_s"], 1),
        "speedup": round(sequential["sequential_wall_s"] / parallel["parallel_wall_s"], 2),
        "cpu_count": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m skillit_ray.benchmark")
    parser.add_argument("which", choices=["throughput", "graph"], nargs="?", default="throughput")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    arguments = parser.parse_args(argv)
    result = throughput(arguments.overrides) if arguments.which == "throughput" else graph_speedup(arguments.overrides)
    print(json.dumps(result, indent=2))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
