"""Per-skill validation loss (and accuracy) on fixed held-out sets, sharded over ranks.

Role in the flow: train -> **evaluate** -> sampler. Every rank scores its slice of every
evaluation skill's validation set (sample i goes to rank i % world_size), the per-skill sums are
all-reduced, so every rank ends with the same per-skill means, which rank 0 reports to the sampler.
`curriculum.score_pool` scores every sample of a curriculum pool the same way (once, before training).

Synthetic skills (samples with an answer): loss = cross-entropy of the answer token only, accuracy =
greedy next token equals the answer (`skills/evaluate.py`, reference sections 4.1 and 7.1). Text
skills (token rows): loss = mean cross-entropy over the real tokens of each sequence, then the mean
over sequences (the official NI evaluator); no accuracy. Prompt/answer text skills (token rows with
an answer mask): the same mean over the answer tokens only.
"""

from __future__ import annotations

import numpy as np
import torch

from skillit_ray.data.source import ValidationSet
from skillit_ray.skills.evaluate import answer_losses_and_correct
from skillit_ray.train import distributed
from skillit_ray.train.model import sequence_losses


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
    for index, validation in enumerate(validation_sets):
        if validation.samples is not None:
            shard = validation.samples[context.rank :: context.world_size]
            if shard:
                with torch.autocast(device_type=context.device.type, dtype=torch.bfloat16, enabled=autocast_bf16):
                    losses, correct = answer_losses_and_correct(model, tokenizer, shard, context.device)
                totals[index] = torch.tensor([losses.sum(), correct.sum(), len(shard)], dtype=torch.float64)
        else:
            shard = slice(context.rank, None, context.world_size)
            shard_rows = validation.token_rows[shard]
            shard_mask = None if validation.loss_mask is None else validation.loss_mask[shard]
            losses = sequence_losses(
                model, shard_rows, tokenizer.pad_token_id, context.device, autocast_bf16, loss_mask=shard_mask
            )
            scored = np.isfinite(losses)  # a prompt/answer row whose answer was truncated away has no score
            totals[index] = torch.tensor([losses[scored].sum(), 0.0, scored.sum()], dtype=torch.float64)
    distributed.all_reduce_sum(totals)
    if was_training:
        model.train()
    counts = totals[:, 2].clamp(min=1)
    val_loss = (totals[:, 0] / counts).tolist()
    accuracy = (totals[:, 1] / counts).tolist() if has_accuracy else None
    return val_loss, accuracy
