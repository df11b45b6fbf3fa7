"""The per-worker training loop, on one page.

Role in the flow: launch (`launch.py`: a Ray Train worker; `local.py`: in process) -> **loop** -> sampler,
metrics, callbacks. `training_loop` builds the parts, restores a checkpoint, evaluates at step 0, then
runs `TrainingRun.step` for every step:

    [1] at a round start, the round's mixture from the sampler (once per round, never per step)
    [2] this rank's batch from the round plan (assembled on a thread while the last step trained)
    [3] forward/backward/step (`step.train_step`: no device sync; the loss is read back only at log points)
    [4] at every evaluation point (every `eval_every_n_steps`, every round end, the last step): per-skill
        evaluation, reported to the sampler, the metrics (rank 0) and the callbacks (`evaluation.py`)
    [5] a checkpoint when due (`evaluation.py`, `checkpoint.py`)

The parts: `plans.Rounds` over a round plan ([1], [2]), `prefetch.BatchPrefetcher` ([2] ahead),
`step.train_step` ([3]), `evaluation.EvaluationPoint` ([4], [5]), `throughput.ThroughputMeter`
(tokens/s of the training steps). Everything that observes the loop is a callback (`callbacks.py`);
every metric goes through the metrics sink (`metrics.py`), written by rank 0.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from skillit_ray.config.job import JobConfig
from skillit_ray.data.source import SkillSetup
from skillit_ray.data.sources.registry import load_skill_tokenizer
from skillit_ray.data.storage import RunStorage
from skillit_ray.train import checkpoint, distributed
from skillit_ray.train.callbacks import LoopCallback, LoopCallbacks
from skillit_ray.train.checkpoint import CheckpointParts, RankZeroPart, TorchRngState
from skillit_ray.train.evaluation import EvaluationPoint
from skillit_ray.train.export import export_model
from skillit_ray.train.metrics import MetricsSink
from skillit_ray.train.parallel import ModelAndOptimizer, is_sharded, local_state_bytes
from skillit_ray.train.plans import Rounds, build_round_plan
from skillit_ray.train.prefetch import BatchPrefetcher
from skillit_ray.train.sampler import SamplerClient
from skillit_ray.train.step import build_training_parts, fetch_model_on_this_node, train_step
from skillit_ray.train.throughput import LoopResult, ThroughputMeter


def training_loop(
    config: JobConfig,
    setup: SkillSetup,
    context: distributed.WorkerContext,
    sampler: SamplerClient,
    sink: MetricsSink,
    callbacks: LoopCallback | None = None,
    checkpoint_directory: str | None = None,
    prepare_model=None,
    write_checkpoints: bool = True,
    export_to: RunStorage | None = None,
) -> LoopResult:
    """Train one worker's share; identical on every rank except the data it reads.

    `checkpoint_directory` restores a checkpoint first; `prepare_model` wraps the model for data
    parallelism (Ray Train's DDP); `write_checkpoints=False` (in-process short runs and trials, which
    never resume) skips [5]; `export_to` (a run's storage) receives the final model (`export.py`)."""
    distributed.seed_everything(config.train.seed)
    fetch_model_on_this_node(config, context)
    run = TrainingRun(config, setup, context, sampler, sink, callbacks or LoopCallbacks(), prepare_model)
    start_step = checkpoint.restore(checkpoint_directory, run.parts, context) if checkpoint_directory else 0
    run.start(start_step, write_checkpoints)
    try:
        for step in range(start_step, config.train.steps):
            stopped = run.step(step)
            if stopped:
                return run.stop(stopped)
    finally:
        run.batches.close()
    result = run.finish()
    if export_to is not None:
        where = export_model(run.model, run.tokenizer, export_to, config.train.steps, context.rank)
        distributed.log_rank0(context, "exported the final model to %s", where)
    return result


class TrainingRun:
    """One worker's run: its parts, built once, and the body of one step."""

    def __init__(self, config, setup, context, sampler, sink, callbacks: LoopCallback, prepare_model) -> None:
        self.config, self.setup, self.context = config, setup, context
        self.sampler, self.sink, self.callbacks = sampler, sink, callbacks
        self.autocast_bf16 = config.train.autocast_bf16(context.device.type)
        self.tokenizer = load_skill_tokenizer(setup)
        self.model, self.optimizer, self.scheduler = build_training_parts(config, len(self.tokenizer), context.device)
        self.plan = build_round_plan(config, setup, self.tokenizer, context, sampler)
        self.parts = checkpoint_parts(self.model, self.optimizer, self.scheduler, sampler, self.plan, context)
        sharded = is_sharded(self.model)  # FSDP2 reduces the gradients itself: no DDP wrapper
        self.training_model = prepare_model(self.model) if prepare_model and not sharded else self.model
        if config.train.compile:
            self.training_model = torch.compile(self.training_model)

    def start(self, start_step: int, write_checkpoints: bool) -> None:
        """After the restore: the metrics continue from `start_step`, the plan is ready, step 0 is evaluated."""
        config, context = self.config, self.context
        self.sink.restore(start_step)
        self.plan.prepare(self.model, self.autocast_bf16)
        self.evaluation = EvaluationPoint(
            config, self.setup, context, self.sampler, self.sink, self.callbacks, self.model, self.tokenizer,
            self.parts, start_step, write_checkpoints,
        )  # fmt: skip
        self.rounds = Rounds(config, self.plan, self.sampler, context, self.evaluation.steps)
        self.batches = BatchPrefetcher(
            self.rounds, self.evaluation.is_due, config.train.steps, config.data.prefetch_batches
        )
        self.meter = ThroughputMeter(config, context.device, start_step)
        self.last_counts: Any = []
        self.callbacks.on_start(start_step)
        if start_step == 0:
            self.evaluation.run(0)

    def step(self, step: int) -> str | None:
        """Train step `step`; returns why the run must stop (a non-finite loss), else None."""
        self.meter.begin_step(step)
        input_ids, self.last_counts, assembly_s = self.batches.batch(step)  # [1] [2]
        self.meter.batch_assembled(assembly_s)
        self.callbacks.before_step(step)
        loss_sum, global_tokens = train_step(  # [3]
            self.training_model, self.optimizer, input_ids, self.tokenizer.pad_token_id, self.config, self.context,
            self.autocast_bf16,
        )  # fmt: skip
        self.scheduler.step()
        completed = step + 1
        record = self.meter.train_record(completed, loss_sum, global_tokens, self.learning_rate())
        if record is not None:
            if not math.isfinite(record["train_loss"]):  # every rank sees the global loss
                return self.non_finite_message(f"training loss became {record['train_loss']}", completed)
            self.write_rank_zero(record)
        if self.evaluation.is_due(completed):  # [4] evaluate and report, [5] checkpoint when due
            self.meter.pause()
            stopped = self.evaluation.run(completed, self.rounds.close(completed))
            if stopped:
                return self.non_finite_message(stopped, completed)
        return None

    def learning_rate(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def write_rank_zero(self, record: dict[str, Any]) -> None:
        if self.context.rank == 0:
            self.sink.write(record)

    def non_finite_message(self, what: str, step: int) -> str:
        counts = zip(self.setup.train_skills, self.last_counts)
        in_batch = ", ".join(f"{skill} x{int(count)}" for skill, count in counts if count)
        return (
            f"{what} at step {step} (learning rate {self.learning_rate():.3g}; rank {self.context.rank}'s last "
            f"batch: {in_batch}); the run stopped there: lower train.learning_rate or raise train.warmup_steps, "
            "then re-run (it resumes from the last checkpoint)"
        )

    def stop(self, message: str) -> LoopResult:
        """A non-finite loss: every rank stops here (each saw the same all-reduced value); the sampler records
        why, so the driver reports it and no retry replays the divergence."""
        if self.context.rank == 0:
            self.sampler.report_stop(message)
        self.sink.flush()
        return self.meter.result()

    def finish(self) -> LoopResult:
        """The run's throughput, into the metrics."""
        result = self.meter.result()
        self.write_rank_zero(
            {
                "kind": "throughput",
                "step": result.step,
                "tokens_per_s": result.tokens_per_s,
                "train_step_s": result.train_wall_s,
                "batch_assembly_s": result.batch_assembly_s,
                "batch_waiting_s": result.batch_waiting_s,
                "peak_memory_bytes": result.peak_memory_bytes,
                "model_state_bytes": local_state_bytes(self.model, self.optimizer),
            }  # fmt: skip
        )
        self.sink.flush()
        return result


def checkpoint_parts(model, optimizer, scheduler, sampler, plan, context) -> CheckpointParts:
    """Every stateful part of the run, by checkpoint file (rank 0) or per-rank name."""
    plan_files, plan_per_rank = plan.checkpoint_parts()
    return CheckpointParts(
        weights=ModelAndOptimizer(model, optimizer),
        files={
            "scheduler.pt": scheduler,
            "sampler.json": RankZeroPart(sampler, context.rank),
            **plan_files,
        },
        per_rank={**plan_per_rank, "torch_rng": TorchRngState()},
    )
