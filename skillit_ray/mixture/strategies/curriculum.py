"""The sample-level curriculum and anticurriculum (the official curriculum trainer). Pure numpy.

Role in the flow: registry -> **curriculum** -> sampler, and -> `train/curriculum.py` (the plan that
scores the pool with the initial model). The strategy's per-skill weights are the fixed proportions
of the pool (`mixture.proportions`, the Random mixture); what it changes is which samples each round
trains on: a pool of `mixture.curriculum.pool_size` samples in those proportions, sorted by the initial
model's loss (easy -> hard, or reversed), paced so that round r draws from the first
(r + 1) / `mixture.curriculum.num_epochs` of the order. This module holds the pool's composition and the
pacing; the scoring and the batches are the train stage's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from skillit_ray.mixture.quotas import round_quotas, seeded_rng
from skillit_ray.mixture.strategies.fixed import FixedMixture
from skillit_ray.mixture.strategy import StrategyInputs


@dataclass(frozen=True)
class CurriculumOptions:
    """`mixture.curriculum.*`, for curriculum and anticurriculum."""

    num_epochs: int = 5
    """Pacing: rounds until the whole ordered pool is available (M)."""
    pool_size: int = 0
    """Samples scored by the initial model (0: every sample the run trains on, steps x batch)."""

    def __post_init__(self) -> None:
        if self.num_epochs < 1:
            raise ValueError(f"mixture.curriculum.num_epochs={self.num_epochs} must be >= 1")
        if self.pool_size < 0:
            raise ValueError(f"mixture.curriculum.pool_size={self.pool_size} must be >= 0 (0: steps x batch)")


class CurriculumMixture(FixedMixture):
    """Sample-level curriculum: easy samples first, from a pool in the Random proportions."""

    name = "curriculum"
    options_section = "curriculum"
    Options = CurriculumOptions
    uses_graph = False
    sample_order = "easy_first"

    def __init__(self, num_train_skills: int, proportions: Any = None, options: CurriculumOptions | None = None):
        super().__init__(num_train_skills, proportions)
        self.options = options or CurriculumOptions()

    @classmethod
    def build(cls, inputs: StrategyInputs, options: CurriculumOptions) -> CurriculumMixture:
        weights = inputs.proportions if inputs.proportions else np.ones(inputs.num_train_skills)
        return cls(inputs.num_train_skills, np.asarray(weights, dtype=np.float64), options)


class AnticurriculumMixture(CurriculumMixture):
    """Sample-level anticurriculum: hard samples first."""

    name = "anticurriculum"
    sample_order = "hard_first"


def curriculum_pool_skills(proportions: Any, pool_size: int, seed: int) -> np.ndarray:
    """Skill of each position of the curriculum's sample pool, in a seeded random order.

    The pool holds exactly `round_quotas(proportions, pool_size)` samples per skill (the official
    curriculum trainer scores "the same imbalanced pool as Random"); its order only matters for
    ties in the loss sort, and it is a pure function of (proportions, pool_size, seed).
    """
    if pool_size < 1:
        raise ValueError(f"the curriculum pool needs at least one sample (pool_size={pool_size})")
    sequence = np.repeat(np.arange(len(proportions)), round_quotas(proportions, pool_size))
    seeded_rng(seed, 0xC0C0).shuffle(sequence)
    return sequence


def curriculum_round_indices(
    sample_losses: Any,
    num_rounds: int,
    samples_per_round: int,
    num_epochs: int,
    seed: int,
    anticurriculum: bool = False,
) -> list[np.ndarray]:
    """Sample-level (anti)curriculum: which pool samples each round trains on (reference section 2).

    The pool is sorted by the initial model's per-sample loss (easy -> hard, or reversed). Pacing
    g(r) = (r + 1) * n / M: round r draws `samples_per_round` samples without replacement from the
    first g(r) samples of the order (M = `num_epochs`, clipped to the pool), as
    `trainer/curriculum_trainer.py` does. Deterministic in seed.
    """
    losses = np.asarray(sample_losses, dtype=np.float64)
    if losses.ndim != 1 or losses.size == 0 or not np.all(np.isfinite(losses)):
        raise ValueError("sample_losses must be a non-empty finite 1-D array (one loss per pool sample)")
    if num_rounds < 1 or num_epochs < 1 or samples_per_round < 1:
        raise ValueError("num_rounds, num_epochs and samples_per_round must all be >= 1")
    order = np.argsort(losses, kind="stable")
    if anticurriculum:
        order = order[::-1].copy()
    pool_size = losses.size
    selections = []
    for round_index in range(num_rounds):
        available = min(pool_size, max(samples_per_round, (round_index + 1) * pool_size // num_epochs))
        prefix = order[:available]
        replace = samples_per_round > prefix.size
        chosen = seeded_rng(seed, round_index, 0xC0).choice(prefix, size=samples_per_round, replace=replace)
        selections.append(np.asarray(chosen, dtype=np.int64))
    return selections
