"""Evaluation points: per-skill validation losses, the sampler and the metrics told, checkpoints written.

Role in the flow: loop -> **evaluation** -> sampler (the losses the mixture learns from), metrics (rank 0)
and checkpoint. Every rank scores its slice of every evaluation skill's validation set (sample i goes to
rank i % world_size), the per-skill sums are all-reduced, so every rank ends with the same per-skill
means; rank 0 reports them.

Synthetic skills (samples with an answer): loss = cross-entropy of the answer token only, accuracy =
greedy next token equals the answer (`skills/evaluate.py`, reference sections 4.1 and 7.1). Text
skills (token rows): loss = mean cross-entropy over the real tokens of each sequence, then the mean
over sequences (the official NI evaluator); no accuracy. Prompt/answer text skills (token rows with
an answer mask): the same mean over the answer tokens only.
"""

from __future__ import annotations

import shutil
from typing import Any

import numpy as np
import torch

from skillit_ray.config.job import JobConfig
from skillit_ray.data.source import SkillSetup, ValidationSet
from skillit_ray.data.sources.registry import load_validation_sets
from skillit_ray.skills.evaluate import answer_losses_and_correct
from skillit_ray.train import checkpoint, distributed
from skillit_ray.train.callbacks import LoopCallback
from skillit_ray.train.metrics import MetricsSink
from skillit_ray.train.model import sequence_losses
from skillit_ray.train.parallel import is_sharded
from skillit_ray.train.sampler import SamplerClient


@torch.no_grad()
def evaluate_skills(
    model: torch.nn.Module,
    tokenizer,
    validation_sets: list[ValidationSet],
    context: distributed.WorkerContext,
    autocast_bf16: bool = False,
) -> tuple[list[float], list[float] | None]:
    """(per-skill mean validation loss, per-skill accuracy or None), identical on every rank."""
    was_training = model.training
    model.eval()
    # rows: skills; columns: loss sum, correct sum, count
    totals = torch.zeros((len(validation_sets), 3), dtype=torch.float64)
    has_accuracy = all(validation.samples is not None for validation in validation_sets)
    balanced = is_sharded(model)  # FSDP2: every rank runs the same forward passes (each gathers weights)
    for index, validation in enumerate(validation_sets):
        if validation.samples is not None:
            positions = rank_positions(len(validation.samples), context.rank, context.world_size, balanced)
            shard = [validation.samples[position] for position in positions]
            real = real_positions(len(validation.samples), context.rank, context.world_size)
            if shard:
                with torch.autocast(device_type=context.device.type, dtype=torch.bfloat16, enabled=autocast_bf16):
                    losses, correct = answer_losses_and_correct(model, tokenizer, shard, context.device)
                losses, correct = losses[:real], correct[:real]
                totals[index] = torch.tensor([losses.sum(), correct.sum(), real], dtype=torch.float64)
        else:
            positions = rank_positions(len(validation.token_rows), context.rank, context.world_size, balanced)
            real = real_positions(len(validation.token_rows), context.rank, context.world_size)
            shard_rows = validation.token_rows[positions]
            shard_mask = None if validation.loss_mask is None else validation.loss_mask[positions]
            losses = sequence_losses(
                model, shard_rows, tokenizer.pad_token_id, context.device, autocast_bf16, loss_mask=shard_mask
            )[:real]
            scored = np.isfinite(losses)  # a prompt/answer row whose answer was truncated away has no score
            totals[index] = torch.tensor([losses[scored].sum(), 0.0, scored.sum()], dtype=torch.float64)
    distributed.all_reduce_sum(totals)
    if was_training:
        model.train()
    counts = totals[:, 2].clamp(min=1)
    val_loss = (totals[:, 0] / counts).tolist()
    accuracy = (totals[:, 1] / counts).tolist() if has_accuracy else None
    return val_loss, accuracy


def real_positions(count: int, rank: int, world_size: int) -> int:
    """How many of `count` items rank `rank` scores (items rank, rank + W, ...)."""
    return len(range(rank, count, world_size))


def rank_positions(count: int, rank: int, world_size: int, balanced: bool) -> np.ndarray:
    """The items rank `rank` scores: rank, rank + W, ...; `balanced` pads every rank to the same number with
    item 0 (scored, then dropped: `real_positions` first), so sharded ranks run the same forward passes."""
    positions = np.arange(rank, count, world_size)
    if balanced and count:
        positions = np.concatenate([positions, np.zeros(-(-count // world_size) - len(positions), dtype=np.int64)])
    return positions


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


class EvaluationPoint:
    """[4] evaluate per skill, report to the sampler and the metrics (rank 0) and to the callbacks;
    [5] checkpoint when due.

    Checkpoints follow their own cadence (`checkpoint_steps`); the metrics are flushed before each, so
    the run directory holds every record up to the checkpoint's step. The staging directory of a
    checkpoint is removed once the callbacks saw it (Ray Train has copied it to storage by then), and
    on failure.
    """

    def __init__(
        self,
        config: JobConfig,
        setup: SkillSetup,
        context: distributed.WorkerContext,
        sampler: SamplerClient,
        sink: MetricsSink,
        callbacks: LoopCallback,
        model: torch.nn.Module,
        tokenizer,
        parts: checkpoint.CheckpointParts,
        start_step: int,
        write_checkpoints: bool = True,
    ) -> None:
        self.context, self.sampler, self.sink, self.callbacks = context, sampler, sink, callbacks
        self.model, self.tokenizer, self.parts, self.start_step = model, tokenizer, parts, start_step
        self.validation_sets = load_validation_sets(config, setup, tokenizer)
        self.steps = set(evaluation_steps(config))
        self.checkpoint_at = set(checkpoint_steps(config)) if write_checkpoints else set()
        self.fingerprint = checkpoint.config_fingerprint(config, setup)
        self.autocast_bf16 = config.train.autocast_bf16(context.device.type)

    def is_due(self, step: int) -> bool:
        return step in self.steps or step in self.checkpoint_at

    def run(self, step: int, round_record: dict[str, Any] | None = None) -> str | None:
        """Evaluate, report and checkpoint as due; returns what went non-finite when the run must stop, else None."""
        metrics: dict[str, Any] = {"step": step}
        if step in self.steps:
            evaluated = self._evaluate(step, round_record)
            if evaluated is None:
                return "validation loss became non-finite"
            metrics.update(evaluated)
        self.sink.flush()
        distributed.barrier()  # every rank sees this evaluation in the sampler before the next round
        due = step in self.checkpoint_at and step > self.start_step
        directory = checkpoint.write_checkpoint(step, self.parts, self.context, self.fingerprint) if due else None
        try:
            self.callbacks.on_report(step, metrics, directory)
        finally:
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)
        return None

    def _evaluate(self, step: int, round_record: dict[str, Any] | None) -> dict[str, Any] | None:
        val_loss, accuracy = evaluate_skills(
            self.model, self.tokenizer, self.validation_sets, self.context, self.autocast_bf16
        )
        if not np.all(np.isfinite(val_loss)):  # all-reduced: every rank sees it
            return None
        if self.context.rank == 0:
            self.sampler.report_evaluation(step, val_loss)
            self.sink.write({"kind": "eval", "step": step, "val_loss": val_loss, "accuracy": accuracy})
            if round_record is not None:
                agreeing = round_record.pop("num_ranks_agreeing")
                self.sink.write({"kind": "round", **round_record, "val_loss": val_loss, "accuracy": accuracy,
                                 "num_ranks_agreeing": agreeing})  # fmt: skip
        metrics = {"mean_val_loss": float(np.mean(val_loss)), "val_loss": val_loss}
        if accuracy is not None:
            metrics.update(mean_accuracy=float(np.mean(accuracy)), accuracy=accuracy)
        return metrics
