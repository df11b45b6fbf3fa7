"""Skill-level curriculum and anticurriculum (paper App. D.3.1). Pure numpy.

Role in the flow: registry -> **skill_curriculum** -> sampler. Skills are ranked by their loss at the
first evaluation (before training). The rounds are split into k + 1 phases: phase p < k trains on the
p-th ranked skill, mixing `mixture.skill_curriculum.mixing_fraction` of the earlier skills (uniformly);
the last phase is skill-stratified over all. Needs continual pre-training (evaluation = training skills).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from skillit_ray.mixture.strategy import MixtureStrategy, StrategyInputs


@dataclass(frozen=True)
class SkillCurriculumOptions:
    """`mixture.skill_curriculum.*`, for skill_curriculum and skill_anticurriculum."""

    mixing_fraction: float = 0.4
    """Share of each phase given to the earlier skills (paper 0.4)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.mixing_fraction < 1.0:
            raise ValueError(f"mixture.skill_curriculum.mixing_fraction={self.mixing_fraction} must be in [0, 1)")


class SkillCurriculumMixture(MixtureStrategy):
    """Skill-curriculum (easy -> hard); `hardest_first` gives the anticurriculum (hard -> easy)."""

    name = "skill_curriculum"
    options_section = "skill_curriculum"
    Options = SkillCurriculumOptions
    hardest_first = False

    def __init__(self, num_train_skills: int, num_rounds: int = 6, mixing_fraction: float = 0.4) -> None:
        super().__init__(num_train_skills)
        self.num_rounds, self.mixing_fraction = num_rounds, mixing_fraction

    def skill_order(self) -> np.ndarray:
        if not self.loss_history:
            raise ValueError("skill curriculum needs the evaluation before training (step 0) to rank skills")
        initial = np.asarray(self.loss_history[0])
        if initial.size != self.num_train_skills:
            raise ValueError("skill curriculum needs one evaluation loss per training skill (pre-training setting)")
        order = np.argsort(initial, kind="stable")
        return order[::-1].copy() if self.hardest_first else order

    def weights_for_round(self, round_index: int) -> np.ndarray:
        num_phases = self.num_train_skills + 1
        phase = min(round_index * num_phases // self.num_rounds, num_phases - 1)
        if phase == num_phases - 1:
            return np.full(self.num_train_skills, 1.0 / self.num_train_skills)
        order = self.skill_order()
        weights = np.zeros(self.num_train_skills)
        if phase == 0:
            weights[order[0]] = 1.0
        else:
            weights[order[phase]] = 1.0 - self.mixing_fraction
            weights[order[:phase]] = self.mixing_fraction / phase
        return weights / weights.sum()

    def state_name(self) -> str:
        return "skill_curriculum"

    @classmethod
    def build(cls, inputs: StrategyInputs, options: Any) -> SkillCurriculumMixture:
        if inputs.num_train_skills != inputs.num_eval_skills:
            raise ValueError(
                "skill (anti)curriculum ranks training skills by their own loss: use the pretraining setting"
            )
        return cls(inputs.num_train_skills, inputs.num_rounds, options.mixing_fraction)


class SkillAnticurriculumMixture(SkillCurriculumMixture):
    """Skill-anticurriculum: the hardest skill first."""

    name = "skill_anticurriculum"
    hardest_first = True
