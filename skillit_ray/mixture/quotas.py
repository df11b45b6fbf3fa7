"""Which samples each round and step train on, as pure index math (numpy only, no Ray).

Role in the flow: mixture -> **quotas** -> plans -> train loop. A round's mixture weights become
exact integer per-skill counts (`round_quotas`, largest remainder), a shuffled sequence of skill
indices for the round (`round_skill_schedule`, seeded by (seed, round)) and, per step, per-rank
per-skill counts (`split_quotas_across_ranks`), so every rank computes the same split without
communication.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def as_weights(weights: Any, name: str, length: int | None = None, allow_zero: bool = True) -> np.ndarray:
    array = np.asarray(weights, dtype=np.float64)
    if array.ndim != 1 or array.size < 1:
        raise ValueError(f"{name} must be a non-empty 1-D list of weights, got shape {array.shape}")
    if length is not None and array.size != length:
        raise ValueError(f"{name} has {array.size} entries but there are {length} skills; give one per skill")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{name}={array.tolist()} must be finite and non-negative")
    if not allow_zero and np.any(array <= 0):
        raise ValueError(f"{name}={array.tolist()} must be strictly positive")
    if array.sum() <= 0:
        raise ValueError(f"{name}={array.tolist()} sums to 0; give at least one positive weight")
    return array


def normalize(weights: Any, name: str = "weights") -> np.ndarray:
    """Non-negative finite weights with a positive sum, scaled to sum to 1."""
    array = as_weights(weights, name)
    return array / array.sum()


# ----------------------------------------------------------------------------- exact integer quotas


def round_quotas(weights: Any, num_samples: int) -> np.ndarray:
    """Integer per-skill sample counts that sum exactly to `num_samples` (largest remainder).

    Rule: every skill gets floor(p_i * n); the n - sum(floors) leftover samples go one each to the
    skills with the largest fractional parts, ties to the lower skill index; skills with weight 0
    never receive a leftover. The official code instead gives every leftover to the last skill
    (floor + last-absorbs), which biases the last skill by up to k - 1 samples per round and can
    give samples to a skill whose weight is 0. Ours is the closest integer vector in L1.
    """
    probabilities = normalize(weights)
    if int(num_samples) != num_samples or num_samples < 0:
        raise ValueError(f"num_samples={num_samples} must be a non-negative integer")
    num_samples = int(num_samples)
    exact = probabilities * num_samples
    quotas = np.floor(exact).astype(np.int64)
    leftover = num_samples - int(quotas.sum())
    if leftover > 0:
        remainders = exact - quotas
        remainders[probabilities == 0] = -1.0
        # stable sort on -remainder: ties keep index order
        order = np.argsort(-remainders, kind="stable")
        quotas[order[:leftover]] += 1
    assert quotas.sum() == num_samples
    return quotas


def seeded_rng(*key: int) -> np.random.Generator:
    """A numpy generator seeded by a tuple of integers (each taken modulo 2**32)."""
    return np.random.default_rng(np.random.SeedSequence([int(part) & 0xFFFFFFFF for part in key]))


def round_skill_schedule(quotas: Any, seed: int, round_index: int) -> np.ndarray:
    """The round's samples as a shuffled sequence of skill indices, deterministic in (seed, round).

    Step s of the round takes positions [s * batch, (s + 1) * batch) of this sequence, so every
    round trains on exactly its quotas, and each batch is a random draw from them (as the official
    code concatenates the round's per-skill samples, shuffles and iterates sequentially).
    """
    counts = np.asarray(quotas, dtype=np.int64)
    sequence = np.repeat(np.arange(counts.size), counts)
    seeded_rng(seed, round_index, 0x5C4ED).shuffle(sequence)
    return sequence


def split_quotas_across_ranks(step_skill_indices: Any, num_skills: int, world_size: int) -> np.ndarray:
    """Per-rank, per-skill counts for one global step; rows = ranks, columns = skills.

    The step's (already shuffled) skill sequence is dealt contiguously: rank r takes positions
    [r * n // W, (r + 1) * n // W). Column sums equal the global per-skill counts exactly, rank
    shares differ by at most one sample, and the split is a pure function of its inputs, so every
    rank computes the same matrix without talking to the others.
    """
    indices = np.asarray(step_skill_indices, dtype=np.int64)
    if world_size < 1:
        raise ValueError(f"world_size={world_size} must be >= 1")
    if indices.size < world_size:
        raise ValueError(f"{indices.size} samples cannot be split over {world_size} ranks; raise the batch size")
    counts = np.zeros((world_size, num_skills), dtype=np.int64)
    for rank in range(world_size):
        start, end = rank_row_range(indices.size, world_size, rank)
        counts[rank] = np.bincount(indices[start:end], minlength=num_skills)
    return counts


def rank_row_range(num_rows: int, world_size: int, rank: int) -> tuple[int, int]:
    """[start, end) of the rows of a global step that rank `rank` trains on (contiguous, sizes differ by <= 1)."""
    return rank * num_rows // world_size, (rank + 1) * num_rows // world_size


def step_rank_quotas(
    weights: Any,
    samples_in_round: int,
    batch_size: int,
    step_in_round: int,
    world_size: int,
    seed: int,
    round_index: int,
) -> np.ndarray:
    """Per-rank per-skill counts for one step of a round (rows = ranks). Pure and deterministic."""
    quotas = round_quotas(weights, samples_in_round)
    sequence = round_skill_schedule(quotas, seed, round_index)
    step_indices = sequence[step_in_round * batch_size : (step_in_round + 1) * batch_size]
    return split_quotas_across_ranks(step_indices, len(quotas), world_size)
