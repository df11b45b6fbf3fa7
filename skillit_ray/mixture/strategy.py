"""The strategy interface: what every data-selection strategy is, and what it is built from. Pure numpy.

Role in the flow: mixture registry (builds one) -> **strategy** -> sampler actor (holds it). A strategy
turns validation losses into the mixture weights of each round. The contract the sampler relies on:

* `observe(step, losses)` after every evaluation, in step order, with the per-evaluation-skill losses
  (length m); the first call is the evaluation before any training (step 0);
* `weights_for_round(r)` once at the start of round r, after every evaluation of the earlier rounds was
  observed: length-k weights summing to 1;
* `state_dict()` / `load_state_dict()` round-trip everything needed to continue identically.

A strategy is a subclass with a `name` (the `mixture.strategy` value), built by `build(inputs, options)`
from the run's resolved values (`StrategyInputs`) and, when it has options of its own, an `Options`
dataclass read from `mixture.<options_section>.*`. Writing one module in `strategies/` that defines such
a subclass is all it takes to add a strategy (`registry.py` finds it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from skillit_ray.mixture.quotas import normalize


@dataclass(frozen=True)
class StrategyInputs:
    """What every strategy is built from besides its own options, resolved from the run's config and skills."""

    setting: str
    """pretraining, finetuning or out_of_domain."""
    num_train_skills: int
    """k: rows of the skills graph, length of the weights."""
    num_eval_skills: int
    """m: columns of the skills graph, length of every observed loss vector."""
    graph: np.ndarray | None
    """The k x m skills graph (preprocessed), or None where the strategy takes none."""
    eta: float = 0.5
    window: int = 3
    window_reduction: str = "sum"
    """"sum" or "mean" over the window (`mixture.loss_reduction` resolved by setting)."""
    num_rounds: int = 1
    total_steps: int = 0
    batch_size: int = 0
    proportions: tuple[float, ...] = ()
    prior: tuple[float, ...] = ()
    uniform_mix: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class NoOptions:
    """A strategy without options of its own."""


class MixtureStrategy:
    """Base of every data-selection strategy: mixture weights per round, fed by validation losses."""

    name: ClassVar[str] = ""
    """The `mixture.strategy` value; empty for a base class that is not itself a strategy."""
    options_section: ClassVar[str] = ""
    """`mixture.<options_section>.*` holds this strategy's `Options` (shared by a family, e.g. curriculum)."""
    Options: ClassVar[type] = NoOptions
    needs_proportions: ClassVar[bool] = False
    """The config must give `mixture.proportions`."""
    needs_graph: ClassVar[bool] = False
    """Only as good as its skills graph: running without one is an error, not the identity."""
    uses_graph: ClassVar[bool] = True
    """False for fixed mixtures, which ignore any graph (and run without one in any setting)."""
    sample_order: ClassVar[str] = ""
    """Sample-level curricula: "easy_first" or "hard_first" order a scored pool (`train/curriculum.py`)."""

    def __init__(self, num_train_skills: int) -> None:
        self.num_train_skills = num_train_skills
        self.loss_history: list[list[float]] = []
        self.loss_steps: list[int] = []

    @classmethod
    def build(cls, inputs: StrategyInputs, options: Any) -> MixtureStrategy:
        """The strategy for these inputs and options (`Options`); raises ValueError naming the key to fix."""
        raise NotImplementedError

    def observe(self, step: int, losses: Sequence[float]) -> None:
        """Record one evaluation (validation loss per evaluation skill)."""
        losses_array = np.asarray(losses, dtype=np.float64)
        if losses_array.ndim != 1 or not np.all(np.isfinite(losses_array)):
            raise ValueError(f"losses at step {step} must be a finite 1-D vector, got {losses}")
        if self.loss_steps and step < self.loss_steps[-1]:
            raise ValueError(f"evaluation at step {step} arrived after step {self.loss_steps[-1]}; report in order")
        self.loss_history.append(losses_array.tolist())
        self.loss_steps.append(int(step))

    def weights_for_round(self, round_index: int) -> np.ndarray:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {
            "name": self.state_name(),
            "loss_history": [list(v) for v in self.loss_history],
            "loss_steps": list(self.loss_steps),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.state_name():
            raise ValueError(
                f"checkpoint holds mixture strategy {state.get('name')!r}, this run uses {self.state_name()!r}"
            )
        self.loss_history = [list(v) for v in state["loss_history"]]
        self.loss_steps = list(state["loss_steps"])

    def state_name(self) -> str:
        """The name a checkpoint records (a family's shared name, so its checkpoints stay readable)."""
        return self.name


def mix_with_uniform(weights: Any, uniform_mix: float) -> np.ndarray:
    """The collapse guard (a stated deviation from the paper, off at 0): (1 - lambda) p + lambda / k, so a
    saturated softmax cannot starve a skill whose loss the next update needs."""
    if not 0.0 <= uniform_mix <= 1.0:
        raise ValueError(f"mixture.uniform_mix={uniform_mix} must be in [0, 1] (0: the paper's update)")
    probabilities = normalize(weights)
    return (1.0 - uniform_mix) * probabilities + uniform_mix / probabilities.size
