"""Skill-it (online), its static one-round variant and its no-graph ablation. Pure numpy.

Role in the flow: registry -> **skillit** -> sampler. Every round's weights are the update rule of
`update.py` (p proportional to prior * exp(eta * A @ reduce(last w evaluations)), as the official
code computes it) over the whole loss history; `static` keeps the first round's mixture (T = 1 in the
paper), `no_graph` uses the identity graph. `mixture.uniform_mix` is the collapse guard (off: the paper).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from skillit_ray.mixture.strategy import MixtureStrategy, StrategyInputs, mix_with_uniform
from skillit_ray.mixture.update import SkillitUpdate, as_graph


class SkillItMixture(MixtureStrategy):
    """Online Skill-it: the update rule applied at every round start to the evaluations so far."""

    name = "skillit"
    needs_graph = True
    online = True

    def __init__(
        self,
        num_train_skills: int,
        graph: Any,
        eta: float = 0.5,
        window: int = 3,
        reduce: str = "sum",
        prior: Any = None,
        uniform_mix: float = 0.0,
    ) -> None:
        super().__init__(num_train_skills)
        self.graph = as_graph(graph, num_train_skills=num_train_skills)
        self.eta, self.window, self.reduce, self.prior, self.uniform_mix = eta, window, reduce, prior, uniform_mix
        # Checks the graph, eta, window, reduce and prior once, up front.
        self.rule = SkillitUpdate(self.graph, eta, window, reduce, prior)
        mix_with_uniform(np.ones(num_train_skills), uniform_mix)

    def weights_for_round(self, round_index: int) -> np.ndarray:
        history = self.loss_history if (self.online and round_index > 0) else []
        return mix_with_uniform(self.rule.weights(history), self.uniform_mix)

    def state_name(self) -> str:
        return "skillit"

    @classmethod
    def build(cls, inputs: StrategyInputs, options: Any) -> SkillItMixture:
        return cls(
            num_train_skills=inputs.num_train_skills,
            graph=cls.graph_for(inputs),
            eta=inputs.eta,
            window=inputs.window,
            reduce=inputs.window_reduction,
            prior=np.asarray(inputs.prior, dtype=np.float64) if inputs.prior else None,
            uniform_mix=inputs.uniform_mix,
        )

    @classmethod
    def graph_for(cls, inputs: StrategyInputs) -> np.ndarray:
        return inputs.graph


class StaticMixture(SkillItMixture):
    """Static Skill-it: the first round's mixture from the graph, kept for the whole run."""

    name = "static"
    online = False


class NoGraphMixture(SkillItMixture):
    """The no-graph ablation: Skill-it's update with the identity graph (loss-proportional sampling)."""

    name = "no_graph"
    needs_graph = False

    @classmethod
    def graph_for(cls, inputs: StrategyInputs) -> np.ndarray:
        return np.eye(inputs.num_train_skills)
