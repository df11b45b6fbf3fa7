"""Per-skill validation loss (and accuracy) on fixed held-out sets, sharded over ranks.

Role in the flow: train -> **evaluate** -> sampler. Every rank scores its slice of every
evaluation skill's validation set (sample i goes to rank i % world_size), the per-skill sums are
all-reduced, so every rank ends with the same per-skill means, which rank 0 reports to the sampler.
`score_pool` scores every sample of a curriculum pool the same way (once, before training).

Synthetic skills (samples with an answer): loss = cross-entropy of the answer token only, accuracy =
greedy next token equals the answer (`skills/evaluate.py`, reference sections 4.1 and 7.1). Text
skills (token rows): loss = mean cross-entropy over the real tokens of each sequence, then the mean
over sequences (the official NI evaluator); no accuracy.
"""

from __future__ import annotations

import numpy as np
import torch

from skillit_ray import distributed
from skillit_ray.data import CurriculumPool, ValidationSet, labels_for
from skillit_ray.skills.evaluate import answer_losses_and_correct, answer_token_losses

SEQUENCES_PER_FORWARD = 64
POOL_SCORING_CHUNK = 64
"""Pool samples per forward when scoring a curriculum pool; chunk c goes to rank c % world_size, so a
sample is always scored in the same batch, whatever the number of workers."""


def _sequence_losses(model, token_rows: np.ndarray, pad_id: int, device, autocast_bf16: bool) -> np.ndarray:
    losses = []
    for start in range(0, len(token_rows), SEQUENCES_PER_FORWARD):
        rows = token_rows[start : start + SEQUENCES_PER_FORWARD]
        labels = torch.as_tensor(labels_for(rows, pad_id))[:, 1:].to(device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast_bf16):
            logits = model(input_ids=torch.as_tensor(rows, dtype=torch.long, device=device)).logits[:, :-1]
        token_losses = torch.nn.functional.cross_entropy(
            logits.float().transpose(1, 2), labels, ignore_index=-100, reduction="none"
        )
        counts = (labels != -100).sum(dim=1).clamp(min=1)
        losses.append((token_losses.sum(dim=1) / counts).double().cpu().numpy())
    return np.concatenate(losses) if losses else np.zeros(0)


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
            shard_rows = validation.token_rows[context.rank :: context.world_size]
            losses = _sequence_losses(model, shard_rows, tokenizer.pad_token_id, context.device, autocast_bf16)
            totals[index] = torch.tensor([losses.sum(), 0.0, len(shard_rows)], dtype=torch.float64)
    distributed.all_reduce_sum(totals)
    if was_training:
        model.train()
    counts = totals[:, 2].clamp(min=1)
    val_loss = (totals[:, 0] / counts).tolist()
    accuracy = (totals[:, 1] / counts).tolist() if has_accuracy else None
    return val_loss, accuracy


@torch.no_grad()
def score_pool(
    model: torch.nn.Module,
    tokenizer,
    pool: CurriculumPool,
    context: distributed.WorkerContext,
    autocast_bf16: bool = False,
) -> np.ndarray:
    """Per-sample loss of every pool position under `model`, identical on every rank (float64).

    Answer-token loss for synthetic samples, mean token loss for texts (what the official curriculum
    trainer sorts by). Ranks score fixed chunks and the results are all-reduced.
    """
    was_training = model.training
    model.eval()
    losses = torch.zeros(len(pool), dtype=torch.float64)
    for chunk_index, start in enumerate(range(0, len(pool), POOL_SCORING_CHUNK)):
        if chunk_index % context.world_size != context.rank:
            continue
        positions = np.arange(start, min(start + POOL_SCORING_CHUNK, len(pool)))
        with torch.autocast(device_type=context.device.type, dtype=torch.bfloat16, enabled=autocast_bf16):
            if pool.has_answers:
                chunk_losses = answer_token_losses(
                    model, tokenizer, pool.items(positions), context.device, batch_size=POOL_SCORING_CHUNK
                )
            else:
                rows = pool.token_rows(positions)
                chunk_losses = _sequence_losses(model, rows, tokenizer.pad_token_id, context.device, autocast_bf16)
        losses[positions] = torch.as_tensor(chunk_losses, dtype=torch.float64)
    distributed.all_reduce_sum(losses)
    if was_training:
        model.train()
    return losses.numpy()
