"""Aioli (Chen et al. 2024, arXiv 2411.05735): the interaction matrix re-estimated online. Pure numpy.

Role in the flow: registry -> **aioli** -> sampler. Aioli does not learn the graph once before training:
every update starts with short LearnParams probes (each trains, for real, on a smoothed one-hot mixture
of one skill), measures how every skill's validation loss moved, and solves for the interaction matrix
A_t; the rest of the update trains on p proportional to exp(eta * sum over evaluation skills of
A_t[:, skill]), with A_t smoothed by an EMA. Rounds are Aioli's sub-rounds: every
`mixture.aioli.rounds_per_update` rounds form one update, its first k x `probe_sweeps` rounds are the
probes (counted in the step budget). It reads the evaluation at every round boundary (the loop
evaluates at every round end). Reference: `HazyResearch/aioli`, `trainer/aioli_trainer.py`
(`learn_params_subroutine`, `aioli_normalize_A`); re-implemented from the paper and those rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from skillit_ray.mixture.quotas import seeded_rng
from skillit_ray.mixture.strategy import MixtureStrategy, StrategyInputs, mix_with_uniform


@dataclass(frozen=True)
class AioliOptions:
    """`mixture.aioli.*`."""

    rounds_per_update: int = 10
    """Rounds (Aioli's sub-rounds) per update; the first k x probe_sweeps of them are probes."""
    probe_sweeps: int = 1
    """Probe sweeps over the k skills per update (Aioli's lp_rounds)."""
    one_hot_factor: float = 0.5
    """The probed skill's share in a probe mixture (1: one-hot)."""
    ema: float = 0.5
    """Weight of the previous interaction matrix in its moving average (0: the latest only)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"mixture.aioli.ema={self.ema} must be in [0, 1)")
        if self.probe_sweeps < 1:
            raise ValueError(f"mixture.aioli.probe_sweeps={self.probe_sweeps} must be >= 1")


def smoothed_one_hot(num_skills: int, skill: int, one_hot_factor: float) -> np.ndarray:
    """A probe mixture: `one_hot_factor` on one skill, the rest shared equally by the others."""
    if num_skills == 1:
        return np.ones(1)
    weights = np.full(num_skills, (1.0 - one_hot_factor) / (num_skills - 1))
    weights[skill] = one_hot_factor
    return weights


def interaction_matrix(
    loss_before: Any, losses_after_probes: Sequence[Any], probe_skills: Sequence[int], one_hot_factor: float
) -> np.ndarray:
    """LearnParams: the k x k interaction matrix (rows = evaluation skills, columns = training skills).

    Probe p trains on `smoothed_one_hot(k, probe_skills[p])` and ends with `losses_after_probes[p]`;
    its loss drop since the previous probe is added to column `probe_skills[p]` of the observed matrix,
    averaged over sweeps. Smoothed probes mix the skills, so each row is unmixed by solving W a = row
    with W[m] the m-th probe mixture.
    """
    previous = np.asarray(loss_before, dtype=np.float64)
    num_skills = previous.size
    observed, counts = np.zeros((num_skills, num_skills)), np.zeros(num_skills)
    for skill, after in zip(probe_skills, losses_after_probes, strict=True):
        after = np.asarray(after, dtype=np.float64)
        observed[:, skill] += previous - after
        counts[skill] += 1
        previous = after
    if np.any(counts == 0):
        raise ValueError(f"every skill needs at least one probe, got probes {list(probe_skills)}")
    observed /= counts[np.newaxis, :]
    if one_hot_factor == 1.0:
        return observed
    mixtures = np.stack([smoothed_one_hot(num_skills, skill, one_hot_factor) for skill in range(num_skills)])
    return np.stack([np.linalg.solve(mixtures, row) for row in observed])


def normalize_interactions(matrix: Any) -> np.ndarray:
    """Aioli's `aioli_normalize_A`: shift by the smallest entry when it is negative, then divide by the sum."""
    array = np.array(matrix, dtype=np.float64)
    if array.min() < 0:
        array -= array.min()
    total = array.sum()
    return array / total if total > 0 else np.full_like(array, 1.0 / array.size)


class AioliMixture(MixtureStrategy):
    """Aioli: probes, then the mixture from the smoothed interaction matrix, once per update."""

    name = "aioli"
    options_section = "aioli"
    Options = AioliOptions
    uses_graph = False

    def __init__(
        self,
        num_train_skills: int,
        eta: float = 0.2,
        total_steps: int = 0,
        num_rounds: int = 1,
        options: AioliOptions | None = None,
        seed: int = 0,
        uniform_mix: float = 0.0,
    ) -> None:
        super().__init__(num_train_skills)
        self.eta, self.total_steps, self.num_rounds, self.seed = eta, total_steps, num_rounds, seed
        self.options, self.uniform_mix = options or AioliOptions(), uniform_mix
        probes = num_train_skills * self.options.probe_sweeps
        if self.options.rounds_per_update <= probes:
            raise ValueError(
                f"mixture.aioli.rounds_per_update={self.options.rounds_per_update} must exceed k x "
                f"mixture.aioli.probe_sweeps = {probes} (the probe rounds), so that every update trains on its "
                "new mixture"
            )
        if not 1.0 / num_train_skills < self.options.one_hot_factor <= 1.0 and num_train_skills > 1:
            raise ValueError(f"mixture.aioli.one_hot_factor={self.options.one_hot_factor} must be in (1/k, 1]")
        mix_with_uniform(np.ones(num_train_skills), uniform_mix)

    def probe_order(self, update_index: int) -> list[int]:
        generator = seeded_rng(self.seed, update_index, 0xA101)
        sweeps = self.options.probe_sweeps
        return [int(skill) for _ in range(sweeps) for skill in generator.permutation(self.num_train_skills)]

    def _losses_at_round_start(self, round_index: int) -> np.ndarray:
        step = round_index * self.total_steps // self.num_rounds
        if step not in self.loss_steps:
            raise ValueError(f"aioli needs the evaluation at step {step}, the start of round {round_index}")
        return np.asarray(self.loss_history[self.loss_steps.index(step)], dtype=np.float64)

    def weights_for_round(self, round_index: int) -> np.ndarray:
        update_index, position = divmod(round_index, self.options.rounds_per_update)
        order = self.probe_order(update_index)
        if position < len(order):
            return smoothed_one_hot(self.num_train_skills, order[position], self.options.one_hot_factor)
        smoothed = None
        for index in range(update_index + 1):
            first = index * self.options.rounds_per_update
            probes = self.probe_order(index)
            after = [self._losses_at_round_start(first + offset + 1) for offset in range(len(probes))]
            before = self._losses_at_round_start(first)
            matrix = normalize_interactions(interaction_matrix(before, after, probes, self.options.one_hot_factor))
            smoothed = matrix if smoothed is None else (1.0 - self.options.ema) * matrix + self.options.ema * smoothed
        logits = self.eta * smoothed.sum(axis=0)
        weights = np.exp(logits - logits.max())
        return mix_with_uniform(weights / weights.sum(), self.uniform_mix)

    @classmethod
    def build(cls, inputs: StrategyInputs, options: AioliOptions) -> AioliMixture:
        if inputs.num_train_skills != inputs.num_eval_skills:
            raise ValueError("aioli learns a square interaction matrix: use the pretraining setting")
        return cls(
            inputs.num_train_skills, inputs.eta, inputs.total_steps, inputs.num_rounds, options, inputs.seed,
            inputs.uniform_mix,
        )  # fmt: skip
