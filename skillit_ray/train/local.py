"""Training in this process: one worker, a local sampler state, records kept in memory.

Role in the flow: tune (every short run and trial), discovery, benchmarks and tests -> **local** -> loop.
No Ray needed: the sampler is the plain `MixtureSamplerState` and the metrics a `MemorySink` (or the
sink given). Observers are loop callbacks (a Tune trial's report, discovery's checkpoint keeper).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from skillit_ray.config.job import JobConfig
from skillit_ray.data.sources.parquet import with_reader
from skillit_ray.mixture.registry import strategy_from_config
from skillit_ray.train import distributed, faults
from skillit_ray.train.callbacks import LoopCallback, LoopCallbacks
from skillit_ray.train.loop import training_loop
from skillit_ray.train.metrics import MemorySink
from skillit_ray.train.resolve import resolve_run
from skillit_ray.train.sampler import MixtureSamplerState


def run_local_training(
    config: JobConfig,
    callbacks: Sequence[LoopCallback] = (),
    use_gpu: bool | None = None,
    write_checkpoints: bool = False,
) -> dict[str, Any]:
    """Train in this process (one worker, local sampler state); returns the run's records.

    Returns {"rounds", "evaluations", "train", "throughput"} (the metric records, as `metrics.py` names
    them), "stopped" (None, or why a non-finite loss stopped the run), "tokens_per_s", "train_skills",
    "eval_skills". `write_checkpoints` writes checkpoints at their steps for callbacks to keep (they
    are removed after `on_report`); otherwise none is written.

    The device is a GPU when `use_gpu` (default: when the graph or tune trials ask for GPUs) and one is
    visible. Parquet is read with pyarrow in this process unless `data.parquet.reader=ray_data` asks
    otherwise (one worker gains nothing from Ray Data, which would start a local Ray)."""
    config, setup = resolve_run(with_reader(config, "arrow", replace=("auto", "streaming_split")))
    state = MixtureSamplerState(strategy_from_config(config, setup.train_skills, setup.eval_skills), config.train.seed)
    if use_gpu is None:
        use_gpu = config.graph.gpus_per_trial > 0 or config.tune.gpus_per_trial > 0
    use_cuda = torch.cuda.is_available() and use_gpu
    context = distributed.WorkerContext(0, 1, torch.device("cuda" if use_cuda else "cpu"))
    sink = MemorySink()
    observers = LoopCallbacks([*callbacks, *faults.from_environment(True, 0)])
    result = training_loop(config, setup, context, state, sink, observers, write_checkpoints=write_checkpoints)
    if state.stop_message():
        raise ValueError(state.stop_message())
    return {**sink.records(), "stopped": None, "tokens_per_s": result.tokens_per_s,
            "train_skills": setup.train_skills, "eval_skills": setup.eval_skills}  # fmt: skip
