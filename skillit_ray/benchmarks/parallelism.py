"""`python -m skillit_ray.benchmarks parallelism`: ddp against FSDP2, tokens/s and memory per rank, one run.

Role in the flow: a benchmark beside the product (not a test). The throughput benchmark's job (LEGO-5,
the small GPT-2 shape, 40-token rows, batch 32; `throughput.THROUGHPUT_DEFAULTS`) trained by the whole
pipeline (`run_training`: Ray Train, sampler actor, exact quotas) on 2 workers, under `train.parallelism`
ddp, fsdp, and fsdp with activation checkpointing, in turns, `repeats` times. From each run's throughput
record: tokens/s of the timed steps (first 5 left out), the peak memory of rank 0 (CUDA memory allocated
on a GPU; the process's resident set on a CPU, which the Python runtime and Ray dominate at this size),
and the bytes of parameters, gradients and AdamW states rank 0 holds (exact: what sharding saves). The
figures are medians over repeats, each run's figures kept.

On a GPU machine (2 GPUs) the same command measures the GPU figures:

    python -m skillit_ray.benchmarks parallelism --set scaling.use_gpu=true --set model.size=gpt2-124m \\
        --set data.sequence_length=1024 --set train.batch_size=16
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from typing import Any

from skillit_ray.benchmarks.registry import Benchmark, add_overrides
from skillit_ray.benchmarks.throughput import THROUGHPUT_DEFAULTS

VARIANTS = {
    "ddp": ["train.parallelism=ddp"],
    "fsdp": ["train.parallelism=fsdp"],
    "fsdp_activation_checkpointing": ["train.parallelism=fsdp", "train.activation_checkpointing=true"],
}


def run_variant(name: str, overrides: list[str], storage: str, repeat: int) -> dict[str, Any]:
    """One pipeline run of a variant; its throughput record."""
    from skillit_ray.config.job import load_config
    from skillit_ray.data.storage import RunStorage
    from skillit_ray.train.launch import run_training
    from skillit_ray.train.metrics import METRICS_FILE, read_jsonl

    run_name = f"parallelism-{name}-{repeat}"
    where = [f"run.storage_path={storage}", f"run.name={run_name}"]
    config = load_config(None, [*THROUGHPUT_DEFAULTS, "scaling.num_workers=2", "train.export_model=false",
                                *VARIANTS[name], *overrides, *where])  # fmt: skip
    run_training(config)
    records = read_jsonl(RunStorage(storage, run_name), METRICS_FILE)
    (record,) = [record for record in records if record["kind"] == "throughput"]
    return {key: record[key] for key in ("tokens_per_s", "peak_memory_bytes", "model_state_bytes")}


def parallelism_benchmark(overrides: list[str], repeats: int = 2) -> dict[str, Any]:
    """Every variant `repeats` times in turns; medians and the ratios against ddp."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="skillit-parallelism-") as storage:
        for repeat in range(repeats):
            for name in VARIANTS:
                runs[name].append(run_variant(name, overrides, storage, repeat))
                print(name, runs[name][-1], flush=True)
    medians = {name: {key: statistics.median(run[key] for run in found) for key in found[0]}
               for name, found in runs.items()}  # fmt: skip
    ddp = medians["ddp"]
    return {
        "benchmark": "parallelism",
        "workers": 2,
        "overrides": [*THROUGHPUT_DEFAULTS, *overrides],
        "medians": medians,
        "tokens_per_s_against_ddp": {
            name: round(value["tokens_per_s"] / ddp["tokens_per_s"], 3) for name, value in medians.items()
        },  # fmt: skip
        "model_state_bytes_against_ddp": {
            name: round(value["model_state_bytes"] / ddp["model_state_bytes"], 3) for name, value in medians.items()
        },  # fmt: skip
        "runs": runs,
    }


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=2, help="runs of each variant, in turns")
    add_overrides(parser)


BENCHMARKS = [
    Benchmark(
        "parallelism",
        "ddp against FSDP2 (and with activation checkpointing): tokens/s and memory per rank, 2 workers",
        lambda arguments: parallelism_benchmark(arguments.overrides, arguments.repeats),
        _arguments,
    )
]
