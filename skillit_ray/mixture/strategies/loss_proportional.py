"""Loss-proportional sampling: each skill in proportion to its latest validation loss. Pure numpy.

Role in the flow: registry -> **loss_proportional** -> sampler. A baseline beside Skill-it's no-graph
ablation (which weighs by exp(eta * summed losses)): here p_i is proportional to L_i ** (1 / T) of the
latest evaluation alone, with T = `mixture.loss_proportional.temperature`. It is also the worked example
of docs/architecture.md: a strategy is one module like this one, and its test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skillit_ray.config.loading import require
from skillit_ray.mixture.quotas import normalize
from skillit_ray.mixture.strategy import MixtureStrategy, StrategyInputs


@dataclass(frozen=True)
class LossProportionalOptions:
    """`mixture.loss_proportional.*`."""

    temperature: float = 1.0
    """Weights proportional to loss ** (1 / temperature): 1 is plain proportional, lower is greedier."""

    def __post_init__(self) -> None:
        require(self.temperature > 0, f"mixture.loss_proportional.temperature={self.temperature} must be > 0")


class LossProportionalMixture(MixtureStrategy):
    """Every round, the latest evaluation's losses (one per training skill) to the power 1 / temperature."""

    name = "loss_proportional"
    options_section = "loss_proportional"
    Options = LossProportionalOptions
    uses_graph = False

    def __init__(self, num_train_skills: int, temperature: float = 1.0) -> None:
        super().__init__(num_train_skills)
        self.temperature = temperature

    def weights_for_round(self, round_index: int) -> np.ndarray:
        if not self.loss_history:
            raise ValueError("loss_proportional needs the evaluation before training (step 0)")
        latest = np.asarray(self.loss_history[-1], dtype=np.float64)
        return normalize(latest ** (1.0 / self.temperature), "validation losses")

    @classmethod
    def build(cls, inputs: StrategyInputs, options: LossProportionalOptions) -> LossProportionalMixture:
        if inputs.num_train_skills != inputs.num_eval_skills:
            raise ValueError("loss_proportional weighs training skills by their own loss: use the pretraining setting")
        return cls(inputs.num_train_skills, options.temperature)
