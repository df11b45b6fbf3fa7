"""The per-worker training loop: a short driver over named parts.

Role in the flow: launch (`train.py`: a Ray Train worker, or in-process for Tune trials) -> **loop** ->
sampler. `training_loop` reads top to bottom: build the parts -> restore a checkpoint -> prepare the
round plan -> evaluate at step 0 -> for each step: [1] at a round start, fetch the round's mixture
from the sampler (once per round, never per step), [2] assemble this rank's batch from the round
plan, [3] forward/backward/step (no device sync: the loss is read back only at log points), [4] at
every evaluation point (every `eval_every_n_steps`, every round end, the last step) evaluate per
skill, report to the sampler and to Ray Train, and [5] checkpoint when due. The parts:

* `plans.Rounds` over a round plan (`plans.QuotaPlan` or `curriculum.CurriculumPlan`): [1], [2];
* `train_step`: [3], exact global token normalization over ranks;
* `EvaluationPoint`: [4], [5];
* `plans.BatchPrefetcher`: [2] for the next step on a background thread while this step runs [3];
* `ThroughputMeter`: tokens/s of the training steps only, the batch-assembly time and how much of it
  the steps waited for;
* `checkpoint.CheckpointParts`: every stateful part, for [5] and the restore.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from skillit_ray.data.source import SkillSetup
from skillit_ray.data.sources.registry import load_skill_tokenizer, load_validation_sets
from skillit_ray.train import checkpoint, distributed
from skillit_ray.train.checkpoint import CheckpointParts, RankZeroPart, TorchRngState
from skillit_ray.train.evaluation import evaluate_skills
from skillit_ray.train.faults import FaultInjector
from skillit_ray.train.model import IGNORED_LABEL, build_model, labels_for, next_token_losses
from skillit_ray.train.plans import BatchPrefetcher, Rounds, build_round_plan

if TYPE_CHECKING:
    from skillit_ray.config.job import JobConfig
    from skillit_ray.train.sampler import SamplerClient

UNTIMED_WARMUP_STEPS = 5
"""Steps after a (re)start left out of the run's tokens/s, like the warm-up of the plain-PyTorch
reference in `skillit_ray.benchmark` (torch.compile and the first Ray Data blocks land there)."""

Reporter = Any  # callable(metrics: dict, checkpoint_directory: str | None) -> None


@dataclass
class LoopResult:
    step: int
    tokens_per_s: float
    train_wall_s: float
    batch_assembly_s: float
    """Assembling this rank's batches, wherever it ran (in line or on the prefetch thread)."""
    batch_waiting_s: float
    """The part of it the training steps waited for (the critical path)."""


def training_loop(
    config: JobConfig,
    setup: SkillSetup,
    context: distributed.WorkerContext,
    sampler: SamplerClient,
    report: Reporter,
    checkpoint_directory: str | None,
    prepare_model=None,
    write_checkpoints: bool = True,
) -> LoopResult:
    """Train one worker's share; identical on every rank except the data it reads.

    `write_checkpoints=False` (in-process short runs and trials, which never resume) skips [5]."""
    distributed.seed_everything(config.train.seed)
    autocast_bf16 = config.train.autocast_bf16(context.device.type)
    tokenizer = load_skill_tokenizer(setup)
    model, optimizer, scheduler = build_training_parts(config, len(tokenizer), context.device)
    plan = build_round_plan(config, setup, tokenizer, context)
    parts = checkpoint_parts(model, optimizer, scheduler, sampler, plan, context)
    start_step = checkpoint.restore(checkpoint_directory, parts, context) if checkpoint_directory else 0
    plan.prepare(model, autocast_bf16)
    training_model = prepare_model(model) if prepare_model else model
    if config.train.compile:
        training_model = torch.compile(training_model)
    evaluation = EvaluationPoint(config, setup, context, sampler, report, model, tokenizer, parts, start_step)
    evaluation.checkpoint_at = evaluation.checkpoint_at if write_checkpoints else set()
    rounds = Rounds(config, plan, sampler, context, evaluation.steps)
    batches = BatchPrefetcher(rounds, evaluation.is_due, config.train.steps, config.data.prefetch_batches)
    meter = ThroughputMeter(config, context.device, start_step)
    faults = FaultInjector(fresh_start=checkpoint_directory is None, rank=context.rank)  # tests and drills only
    faults.started(start_step)
    if start_step == 0:
        evaluation.run(0)
    try:
        for step in range(start_step, config.train.steps):
            meter.begin_step(step)
            # [1] the round's mixture (once per round), [2] this rank's batch (assembled while the last step ran)
            input_ids, batch_counts, assembly_s = batches.batch(step)
            meter.batch_assembled(assembly_s)
            faults.before_step(step)
            loss_sum, global_tokens = train_step(  # [3]
                training_model, optimizer, input_ids, tokenizer.pad_token_id, config, context, autocast_bf16
            )
            scheduler.step()
            completed = step + 1
            record = meter.train_record(completed, loss_sum, global_tokens, scheduler.get_last_lr()[0])
            if record is not None and not math.isfinite(record["train_loss"]):  # every rank sees the global loss
                what = f"training loss became {record['train_loss']}"
                message = non_finite_message(what, record["step"], record["learning_rate"], batch_counts,
                                             setup.train_skills, context)  # fmt: skip
                return stop_run(message, sampler, context, meter)
            if record is not None:
                evaluation.pending_train_records.append(record)
            if evaluation.is_due(completed):  # [4] evaluate and report, [5] checkpoint when due
                meter.pause()
                stopped = evaluation.run(completed, rounds.close(completed))
                if stopped:
                    message = non_finite_message(stopped, completed, scheduler.get_last_lr()[0], batch_counts,
                                                 setup.train_skills, context)  # fmt: skip
                    return stop_run(message, sampler, context, meter)
    finally:
        batches.close()
    return meter.result()


def non_finite_message(what: str, step: int, learning_rate: float, counts, skills, context) -> str:
    in_batch = ", ".join(f"{skill} x{int(count)}" for skill, count in zip(skills, counts) if count)
    return (
        f"{what} at step {step} (learning rate {learning_rate:.3g}; rank {context.rank}'s last batch: {in_batch}); "
        "the run stopped there: lower train.learning_rate or raise train.warmup_steps, then re-run (it resumes "
        "from the last checkpoint)"
    )


def stop_run(message: str, sampler, context, meter: ThroughputMeter) -> LoopResult:
    """A non-finite loss: every rank stops here (each saw the same all-reduced value); the sampler records
    why, so the driver reports it and no retry replays the divergence."""
    if context.rank == 0:
        sampler.report_stop(message)
    return meter.result()


# ----------------------------------------------------------------------------- building


def build_training_parts(config: JobConfig, vocab_size: int, device: torch.device):
    """(model on the device, AdamW, warm-up/decay scheduler) as configured."""
    model = build_model(
        config.model.size,
        vocab_size=vocab_size,
        max_sequence_length=config.data.sequence_length,
        pretrained_path=config.model.pretrained_path,
        overrides=config.model.overrides,
    ).to(device)
    optimizer = build_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(step, config))
    return model, optimizer, scheduler


def checkpoint_parts(model, optimizer, scheduler, sampler, plan, context) -> CheckpointParts:
    """Every stateful part of the run, by checkpoint file (rank 0) or per-rank name."""
    plan_files, plan_per_rank = plan.checkpoint_parts()
    return CheckpointParts(
        files={
            "model.pt": model,
            "optimizer.pt": optimizer,
            "scheduler.pt": scheduler,
            "sampler.json": RankZeroPart(sampler, context.rank),
            **plan_files,
        },
        per_rank={**plan_per_rank, "torch_rng": TorchRngState()},
    )


def learning_rate_factor(step: int, config: JobConfig) -> float:
    """Linear warmup, then linear (official), cosine or constant decay over the remaining steps."""
    train = config.train
    if step < train.warmup_steps:
        return (step + 1) / train.warmup_steps
    if train.lr_schedule == "constant":
        return 1.0
    progress = (step - train.warmup_steps) / max(1, train.steps - train.warmup_steps)
    if train.lr_schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_optimizer(model: torch.nn.Module, config: JobConfig) -> torch.optim.Optimizer:
    """AdamW, no weight decay on biases and LayerNorm weights (official `create_optimizer_scheduler`)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (no_decay if parameter.ndim < 2 or "ln" in name or "norm" in name else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": config.train.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = next(model.parameters()).is_cuda
    return torch.optim.AdamW(groups, lr=config.train.learning_rate, betas=(0.9, 0.999), eps=1e-8, fused=fused)


def evaluation_steps(config: JobConfig) -> list[int]:
    """Steps (counted in completed optimizer steps) after which every rank evaluates.

    Step 0 (before training: curricula rank skills by it, Skill-it's history starts with it), every
    `eval_every_n_steps`, every round end (so each round's update sees fresh losses), and the last.
    """
    train, rounds = config.train, config.mixture.num_rounds
    steps = {0, train.steps}
    steps.update(range(train.eval_every_n_steps, train.steps + 1, train.eval_every_n_steps))
    steps.update(train.steps_in_round(round_index, rounds)[1] for round_index in range(rounds))
    return sorted(steps)


def checkpoint_steps(config: JobConfig) -> list[int]:
    """Steps at which a checkpoint is written (every N steps, else every round end; always the last)."""
    train, rounds = config.train, config.mixture.num_rounds
    if train.checkpoint_every_n_steps:
        steps = set(range(train.checkpoint_every_n_steps, train.steps + 1, train.checkpoint_every_n_steps))
    else:
        steps = {train.steps_in_round(round_index, rounds)[1] for round_index in range(rounds)}
    return sorted(steps | {train.steps})


# ----------------------------------------------------------------------------- [3] the step


def train_step(
    model, optimizer, input_ids: np.ndarray, pad_id: int, config: JobConfig, context, autocast_bf16: bool
) -> tuple[torch.Tensor, float]:
    """One optimizer step over this rank's rows, in micro-batches, without a device sync.

    Returns (this rank's summed token loss as a device tensor, the global count of real tokens);
    `global_mean_loss` turns them into the step's loss when a log record needs it.

    Each rank sums token losses and divides by the global token count times world size: DDP averages
    gradients over ranks, so the result is the exact mean over every real token of the global batch,
    even when ranks hold different numbers of rows or tokens.
    """
    labels = torch.as_tensor(labels_for(input_ids, pad_id))
    inputs = torch.as_tensor(input_ids, dtype=torch.long)
    local_tokens = (labels[:, 1:] != IGNORED_LABEL).sum()
    global_tokens = distributed.all_reduce_sum(local_tokens.to(torch.float64).reshape(1)).item()
    micro = config.train.micro_batch_size or max(1, len(inputs))
    chunks = list(range(0, len(inputs), micro)) or [0]
    optimizer.zero_grad(set_to_none=True)
    loss_sum = torch.zeros((), dtype=torch.float32, device=context.device)
    for index, start in enumerate(chunks):
        chunk_inputs = inputs[start : start + micro].to(context.device, non_blocking=True)
        chunk_labels = labels[start : start + micro].to(context.device, non_blocking=True)
        last = index == len(chunks) - 1
        sync_context = model.no_sync() if (not last and hasattr(model, "no_sync")) else _NullContext()
        with sync_context:
            with torch.autocast(device_type=context.device.type, dtype=torch.bfloat16, enabled=autocast_bf16):
                logits = model(input_ids=chunk_inputs).logits
            token_losses = next_token_losses(logits, chunk_labels, reduction="sum")
            (token_losses * context.world_size / max(global_tokens, 1.0)).backward()
        loss_sum += token_losses.detach()
    if config.train.grad_clip_norm:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip_norm)
    optimizer.step()
    return loss_sum, global_tokens


def global_mean_loss(loss_sum: torch.Tensor, global_tokens: float) -> float:
    """The step's mean token loss over the global batch from each rank's summed token loss (syncs)."""
    return float(distributed.all_reduce_sum(loss_sum.double().cpu().reshape(1)).item() / max(global_tokens, 1.0))


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ----------------------------------------------------------------------------- [4] [5] evaluation points


class EvaluationPoint:
    """[4] evaluate per skill and report to the sampler (rank 0) and to Ray Train; [5] checkpoint when due.

    Checkpoints follow their own cadence (`checkpoint_steps`): at a checkpoint step that is not an
    evaluation step the pending training-loss records go to the sampler first, so its state in the
    checkpoint is complete. The staging directory of a checkpoint is removed once it is reported
    (Ray Train has copied it to storage by then), and on failure.
    """

    def __init__(self, config, setup, context, sampler, report, model, tokenizer, parts, start_step: int) -> None:
        self.context, self.sampler, self.report = context, sampler, report
        self.model, self.tokenizer, self.parts, self.start_step = model, tokenizer, parts, start_step
        self.validation_sets = load_validation_sets(config, setup, tokenizer)
        self.steps = set(evaluation_steps(config))
        self.checkpoint_at = set(checkpoint_steps(config))
        self.fingerprint = checkpoint.config_fingerprint(config, setup)
        self.autocast_bf16 = config.train.autocast_bf16(context.device.type)
        self.pending_train_records: list[dict[str, Any]] = []

    def is_due(self, step: int) -> bool:
        return step in self.steps or step in self.checkpoint_at

    def run(self, step: int, round_record: tuple | None = None) -> str | None:
        """Evaluate, report and checkpoint as due; returns what went non-finite when the run must stop, else None."""
        metrics: dict[str, Any] = {"step": step}
        if step in self.steps:
            evaluated = self._evaluate(step, round_record)
            if evaluated is None:
                return "validation loss became non-finite"
            metrics.update(evaluated)
        elif self.context.rank == 0:
            self.sampler.report_train(self.pending_train_records)
        self.pending_train_records = []
        distributed.barrier()  # every rank sees this evaluation in the sampler before the next round
        due = step in self.checkpoint_at and step > self.start_step
        directory = checkpoint.write_checkpoint(step, self.parts, self.context, self.fingerprint) if due else None
        try:
            self.report(metrics, directory)
        finally:
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)
        return None

    def _evaluate(self, step: int, round_record: tuple | None) -> dict[str, Any] | None:
        val_loss, accuracy = evaluate_skills(
            self.model, self.tokenizer, self.validation_sets, self.context, self.autocast_bf16
        )
        if not np.all(np.isfinite(val_loss)):  # all-reduced: every rank sees it
            return None
        if self.context.rank == 0:
            self.sampler.report_evaluation(step, val_loss, accuracy)
            self.sampler.report_train(self.pending_train_records)
            if round_record is not None:
                self.sampler.report_round(*round_record)
        metrics = {"mean_val_loss": float(np.mean(val_loss)), "val_loss": val_loss}
        if accuracy is not None:
            metrics.update(mean_accuracy=float(np.mean(accuracy)), accuracy=accuracy)
        return metrics


# ----------------------------------------------------------------------------- throughput


class TrainingTimer:
    """Wall time of the training steps without a device sync per step.

    The clock runs from the first step after an evaluation to the next evaluation and stops only
    once the device has finished the queued work, so asynchronous CUDA execution is neither hidden
    nor stalled (a per-step `cuda.synchronize` would stop the host from preparing the next batch).
    """

    def __init__(self, device: torch.device) -> None:
        self.device, self.total_s, self.started = device, 0.0, None

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def start(self) -> None:
        if self.started is None:
            self._synchronize()
            self.started = time.perf_counter()

    def stop(self) -> None:
        if self.started is not None:
            self._synchronize()
            self.total_s += time.perf_counter() - self.started
            self.started = None

    def reset(self) -> None:
        self.stop()
        self.total_s = 0.0

    def elapsed(self) -> float:
        """Seconds so far (call after a host sync for an exact figure while running)."""
        return self.total_s + (time.perf_counter() - self.started if self.started is not None else 0.0)


class ThroughputMeter:
    """Tokens/s of the training steps (evaluation excluded, first steps after a (re)start left out),
    the batch-assembly time within them, and the periodic training-loss records."""

    def __init__(self, config: JobConfig, device: torch.device, start_step: int) -> None:
        self.config, self.start_step = config, start_step
        self.timer = TrainingTimer(device)
        self.tokens_per_step = config.train.batch_size * config.data.sequence_length  # global positions
        # compilation, allocator and stream warm-up land in the first steps after a (re)start
        self.untimed_steps = min(UNTIMED_WARMUP_STEPS, max(0, config.train.steps - start_step - 1))
        self.assembly_s, self.waiting_s, self.last_log = 0.0, 0.0, (start_step, 0.0)
        self._batch_started = 0.0

    def begin_step(self, step: int) -> None:
        if step == self.start_step + self.untimed_steps:
            self.timer.reset()
            self.assembly_s, self.waiting_s, self.last_log = 0.0, 0.0, (step, 0.0)
        self.timer.start()
        self._batch_started = time.perf_counter()

    def batch_assembled(self, assembly_s: float) -> None:
        """The step has its batch: `assembly_s` of assembly work (in line or in the background), of which
        the time since `begin_step` was on the critical path."""
        self.assembly_s += assembly_s
        self.waiting_s += time.perf_counter() - self._batch_started

    def train_record(self, completed: int, loss_sum, global_tokens: float, learning_rate: float) -> dict | None:
        """The training-loss record of a log step (the loop's only per-interval host sync), else None."""
        train = self.config.train
        if completed % train.log_every_n_steps != 0 and completed != train.steps:
            return None
        train_loss = global_mean_loss(loss_sum, global_tokens)  # syncs first, so the clock includes the step
        seconds = self.timer.elapsed()
        interval_s = max(seconds - self.last_log[1], 1e-9)
        record = {
            "kind": "train",
            "step": completed,
            "train_loss": train_loss,
            "learning_rate": learning_rate,
            "tokens_per_s": (completed - self.last_log[0]) * self.tokens_per_step / interval_s,
        }
        self.last_log = (completed, seconds)
        return record

    def pause(self) -> None:
        """Stop the clock for an evaluation (not training time)."""
        self.timer.stop()
        self.last_log = (self.last_log[0], self.timer.elapsed())

    def result(self) -> LoopResult:
        self.timer.stop()
        train_steps = self.config.train.steps - self.start_step - self.untimed_steps
        tokens_per_s = train_steps * self.tokens_per_step / max(self.timer.elapsed(), 1e-9)
        return LoopResult(self.config.train.steps, tokens_per_s, self.timer.elapsed(), self.assembly_s, self.waiting_s)
