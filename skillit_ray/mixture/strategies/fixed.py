"""Fixed mixtures: the same weights every round (stratified, random, target-only). Pure numpy.

Role in the flow: registry -> **fixed** -> sampler. Stratified is uniform over the training skills in
pre-training and over the prerequisites of the evaluation skills otherwise (`settings.py`); random
and target-only take `mixture.proportions` (e.g. LEGO 1:1:1:3:5, or one-hot on the target).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from skillit_ray.mixture.quotas import normalize
from skillit_ray.mixture.settings import stratified_proportions
from skillit_ray.mixture.strategy import MixtureStrategy, StrategyInputs


class FixedMixture(MixtureStrategy):
    """The same weights every round."""

    def __init__(self, num_train_skills: int, proportions: Any = None) -> None:
        super().__init__(num_train_skills)
        self.proportions = normalize(
            np.ones(num_train_skills) if proportions is None else proportions, "mixture.proportions"
        )
        if self.proportions.size != num_train_skills:
            raise ValueError(
                f"mixture.proportions has {self.proportions.size} entries for {num_train_skills} "
                "training skills; give one per training skill"
            )

    def weights_for_round(self, round_index: int) -> np.ndarray:
        return self.proportions.copy()

    def state_name(self) -> str:
        return "fixed"

    @classmethod
    def build(cls, inputs: StrategyInputs, options: Any) -> FixedMixture:
        """The configured proportions (ones when none are given)."""
        weights = inputs.proportions if inputs.proportions else np.ones(inputs.num_train_skills)
        return cls(inputs.num_train_skills, proportions=np.asarray(weights, dtype=np.float64))


class StratifiedMixture(FixedMixture):
    """Skill-stratified sampling: uniform over the skills, or over the prerequisites of the evaluation skills."""

    name = "stratified"

    @classmethod
    def build(cls, inputs: StrategyInputs, options: Any) -> StratifiedMixture:
        proportions = stratified_proportions(inputs.setting, inputs.graph, inputs.num_train_skills)
        return cls(inputs.num_train_skills, proportions=proportions)


class RandomMixture(FixedMixture):
    """The paper's "random" baseline: fixed, usually imbalanced, proportions (LEGO 1:1:1:3:5)."""

    name = "random"
    needs_proportions = True
    uses_graph = False


class TargetOnlyMixture(FixedMixture):
    """Fine-tuning on the target skill(s) alone: proportions one-hot (or spread) on the targets."""

    name = "target_only"
    needs_proportions = True
    uses_graph = False
