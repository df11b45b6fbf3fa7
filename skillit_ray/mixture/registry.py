"""Every data-selection strategy and the strategy registry, as plain numpy.

Role in the flow: config -> **mixture** -> sampler -> train. The sampler actor (`sampler.py`) holds one
`MixtureStrategy`; once per round it asks for the round's mixture weights, and after every per-skill
evaluation it feeds the validation losses back. `quotas.py` turns the weights into exact per-rank,
per-skill counts. No Ray import: everything here is tested with toy arrays.

Adding a strategy: write one `MixtureStrategy` subclass with a `from_options` class method and add
one line to `STRATEGIES`; `config.py` validates `mixture.strategy` against that registry and
`strategy_from_config` builds it (graph resolved from the config) for every driver and trial.

The update rule itself (p proportional to prior * exp(eta * A @ reduce(last w losses)), as the
official code computes it) is `skillit_update.py`; the index math of quotas and curriculum pacing is
`quotas.py`, the three settings `settings.py`. Their public functions are re-exported here, where
callers have always imported them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from skillit_ray.mixture.aioli import interaction_matrix, normalize_interactions, smoothed_one_hot
from skillit_ray.mixture.quotas import (
    normalize,
    seeded_rng,
)
from skillit_ray.mixture.settings import (
    full_graph_columns,
    stratified_proportions,
)
from skillit_ray.mixture.update import SkillitUpdate, _as_graph, paper_binary_graph

if TYPE_CHECKING:
    from skillit_ray.config.job import JobConfig

# ----------------------------------------------------------------------------- strategies


@dataclass
class MixtureStrategy:
    """Base of every data-selection strategy: mixture weights per round, fed by validation losses.

    Contract (the sampler actor relies on it):
      * `observe(step, losses)` is called after every evaluation with the per-evaluation-skill losses
        (length m), in step order; the first call is the evaluation before any training (step 0).
      * `weights_for_round(r)` is called once at the start of round r, after every evaluation of the
        previous rounds was observed, and returns length-k weights summing to 1.
      * `state_dict()` / `load_state_dict()` round-trip everything needed to continue identically.
    """

    num_train_skills: int
    loss_history: list[list[float]] = field(default_factory=list)
    loss_steps: list[int] = field(default_factory=list)

    name = "base"

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
            "name": self.name,
            "loss_history": [list(v) for v in self.loss_history],
            "loss_steps": list(self.loss_steps),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"checkpoint holds mixture strategy {state.get('name')!r}, this run uses {self.name!r}")
        self.loss_history = [list(v) for v in state["loss_history"]]
        self.loss_steps = list(state["loss_steps"])


@dataclass
class FixedMixture(MixtureStrategy):
    """The same weights every round: random (e.g. LEGO 1:1:1:3:5), stratified, target-only."""

    proportions: np.ndarray | None = None
    name = "fixed"

    def __post_init__(self) -> None:
        self.proportions = normalize(
            np.ones(self.num_train_skills) if self.proportions is None else self.proportions,
            "mixture.proportions",
        )
        if self.proportions.size != self.num_train_skills:
            raise ValueError(
                f"mixture.proportions has {self.proportions.size} entries for {self.num_train_skills} "
                "training skills; give one per training skill"
            )

    def weights_for_round(self, round_index: int) -> np.ndarray:
        return self.proportions.copy()

    @classmethod
    def given(cls, options: StrategyOptions) -> FixedMixture:
        """The configured proportions (ones when none are given)."""
        weights = options.proportions if options.proportions else np.ones(options.num_train_skills)
        return cls(options.num_train_skills, proportions=np.asarray(weights, dtype=np.float64))

    @classmethod
    def stratified(cls, options: StrategyOptions) -> FixedMixture:
        """Uniform over the skills, or over the prerequisites of the evaluation skills."""
        proportions = stratified_proportions(options.setting, options.graph, options.num_train_skills)
        return cls(options.num_train_skills, proportions=proportions)


@dataclass
class SkillItMixture(MixtureStrategy):
    """Online Skill-it (and its ablations: static = one round, no_graph = identity graph)."""

    graph: np.ndarray | None = None
    eta: float = 0.5
    window: int = 3
    reduce: str = "sum"
    prior: np.ndarray | None = None
    online: bool = True
    uniform_mix: float = 0.0
    name = "skillit"

    def __post_init__(self) -> None:
        self.graph = _as_graph(self.graph, num_train_skills=self.num_train_skills)
        # Checks the graph, eta, window, reduce and prior once, up front.
        self.rule = SkillitUpdate(self.graph, self.eta, self.window, self.reduce, self.prior)
        mix_with_uniform(np.ones(self.num_train_skills), self.uniform_mix)

    def weights_for_round(self, round_index: int) -> np.ndarray:
        history = self.loss_history if (self.online and round_index > 0) else []
        return mix_with_uniform(self.rule.weights(history), self.uniform_mix)

    @classmethod
    def from_options(cls, options: StrategyOptions, online: bool = True, identity_graph: bool = False):
        """Skill-it (online), static (one mixture from the graph) or no_graph (the identity graph)."""
        return cls(
            num_train_skills=options.num_train_skills,
            graph=np.eye(options.num_train_skills) if identity_graph else options.graph,
            eta=options.eta,
            window=options.window,
            reduce=options.window_reduction,
            prior=np.asarray(options.prior, dtype=np.float64) if options.prior else None,
            online=online,
            uniform_mix=options.uniform_mix,
        )


@dataclass
class SkillCurriculumMixture(MixtureStrategy):
    """Skill-curriculum (easy -> hard) or skill-anticurriculum (hard -> easy), paper App. D.3.1.

    Skills are ranked by their loss at the first evaluation (before training). The rounds are split
    into k + 1 phases: phase p < k trains on the p-th ranked skill, mixing a fraction
    `mixing_fraction` of the earlier skills (uniformly); the last phase is skill-stratified over all.
    Requires continual pre-training (evaluation skills = training skills).
    """

    num_rounds: int = 6
    mixing_fraction: float = 0.4
    hardest_first: bool = False
    name = "skill_curriculum"

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

    @classmethod
    def from_options(cls, options: StrategyOptions, hardest_first: bool = False) -> SkillCurriculumMixture:
        if options.num_train_skills != options.num_eval_skills:
            raise ValueError(
                "skill (anti)curriculum ranks training skills by their own loss: use the pretraining setting"
            )
        return cls(
            num_train_skills=options.num_train_skills,
            num_rounds=options.num_rounds,
            mixing_fraction=options.mixing_fraction,
            hardest_first=hardest_first,
        )


def mix_with_uniform(weights: Any, uniform_mix: float) -> np.ndarray:
    """The collapse guard (a stated deviation from the paper, off at 0): (1 - lambda) p + lambda / k, so a
    saturated softmax cannot starve a skill whose loss the next update needs."""
    if not 0.0 <= uniform_mix <= 1.0:
        raise ValueError(f"mixture.uniform_mix={uniform_mix} must be in [0, 1] (0: the paper's update)")
    probabilities = normalize(weights)
    return (1.0 - uniform_mix) * probabilities + uniform_mix / probabilities.size


@dataclass
class AioliMixture(MixtureStrategy):
    """Aioli (`aioli.py`): the interaction matrix re-estimated online from probes inside the run.

    Rounds are Aioli's sub-rounds. Every `rounds_per_update` rounds form one update: its first
    k x `probe_sweeps` rounds are probes (smoothed one-hot mixtures, skills in a seeded order, trained
    on for real, so they count in the budget), the rest train on p proportional to
    exp(eta * column sums of the EMA of the normalized interaction matrices). It reads the evaluation
    at every round boundary (the loop evaluates at every round end).
    """

    eta: float = 0.2
    total_steps: int = 0
    num_rounds: int = 1
    rounds_per_update: int = 10
    probe_sweeps: int = 1
    one_hot_factor: float = 0.5
    ema: float = 0.5
    seed: int = 0
    uniform_mix: float = 0.0
    name = "aioli"

    def __post_init__(self) -> None:
        probes = self.num_train_skills * self.probe_sweeps
        if self.rounds_per_update <= probes:
            raise ValueError(
                f"mixture.aioli_rounds_per_update={self.rounds_per_update} must exceed k x aioli_probe_sweeps = "
                f"{probes} (the probe rounds), so that every update trains on its new mixture"
            )
        if not 1.0 / self.num_train_skills < self.one_hot_factor <= 1.0 and self.num_train_skills > 1:
            raise ValueError(f"mixture.aioli_one_hot_factor={self.one_hot_factor} must be in (1/k, 1]")
        mix_with_uniform(np.ones(self.num_train_skills), self.uniform_mix)

    def probe_order(self, update_index: int) -> list[int]:
        generator = seeded_rng(self.seed, update_index, 0xA101)
        return [int(skill) for _ in range(self.probe_sweeps) for skill in generator.permutation(self.num_train_skills)]

    def _losses_at_round_start(self, round_index: int) -> np.ndarray:
        step = round_index * self.total_steps // self.num_rounds
        if step not in self.loss_steps:
            raise ValueError(f"aioli needs the evaluation at step {step}, the start of round {round_index}")
        return np.asarray(self.loss_history[self.loss_steps.index(step)], dtype=np.float64)

    def weights_for_round(self, round_index: int) -> np.ndarray:
        update_index, position = divmod(round_index, self.rounds_per_update)
        order = self.probe_order(update_index)
        if position < len(order):
            return smoothed_one_hot(self.num_train_skills, order[position], self.one_hot_factor)
        smoothed = None
        for index in range(update_index + 1):
            first = index * self.rounds_per_update
            probes = self.probe_order(index)
            after = [self._losses_at_round_start(first + offset + 1) for offset in range(len(probes))]
            matrix = normalize_interactions(
                interaction_matrix(self._losses_at_round_start(first), after, probes, self.one_hot_factor)
            )
            smoothed = matrix if smoothed is None else (1.0 - self.ema) * matrix + self.ema * smoothed
        logits = self.eta * smoothed.sum(axis=0)
        weights = np.exp(logits - logits.max())
        return mix_with_uniform(weights / weights.sum(), self.uniform_mix)

    @classmethod
    def from_options(cls, options: StrategyOptions) -> AioliMixture:
        if options.num_train_skills != options.num_eval_skills:
            raise ValueError("aioli learns a square interaction matrix: use the pretraining setting")
        return cls(
            num_train_skills=options.num_train_skills, eta=options.eta, total_steps=options.total_steps,
            num_rounds=options.num_rounds, seed=options.seed, uniform_mix=options.uniform_mix,
            rounds_per_update=options.aioli_rounds_per_update, probe_sweeps=options.aioli_probe_sweeps,
            one_hot_factor=options.aioli_one_hot_factor, ema=options.aioli_ema,
        )  # fmt: skip


# ----------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class StrategyOptions:
    """Everything a strategy is built from, resolved from the config (graph k x m, preprocessed)."""

    setting: str
    num_train_skills: int
    num_eval_skills: int
    graph: np.ndarray | None
    eta: float
    window: int
    loss_reduction: str
    num_rounds: int
    proportions: list[float]
    prior: list[float]
    mixing_fraction: float
    uniform_mix: float = 0.0
    total_steps: int = 0
    seed: int = 0
    aioli_rounds_per_update: int = AioliMixture.rounds_per_update  # one default: Aioli's own
    aioli_probe_sweeps: int = AioliMixture.probe_sweeps
    aioli_one_hot_factor: float = AioliMixture.one_hot_factor
    aioli_ema: float = AioliMixture.ema

    @property
    def window_reduction(self) -> str:
        return window_reduction(self.setting, self.loss_reduction)


def window_reduction(setting: str, loss_reduction: str) -> str:
    """ "sum" or "mean" over the window; "auto" is mean for fine-tuning, sum otherwise (official code)."""
    if loss_reduction != "auto":
        return loss_reduction
    return "mean" if setting == "finetuning" else "sum"


@dataclass(frozen=True)
class StrategySpec:
    """One registry entry: how to build the strategy and what the rest of the system must know of it."""

    build: Callable[[StrategyOptions], MixtureStrategy]
    needs_proportions: bool = False
    """The config must give `mixture.proportions`."""
    needs_graph: bool = False
    """The strategy is only as good as its skills graph: running without one is an error, not the identity."""
    uses_graph: bool = True
    """False for fixed mixtures, which ignore any graph (and run without one in any setting)."""
    sample_order: str = ""
    """Sample-level curricula: "easy_first" or "hard_first" order a scored pool (`curriculum.py`);
    empty for strategies that only set per-skill weights."""


STRATEGIES: dict[str, StrategySpec] = {
    "skillit": StrategySpec(partial(SkillItMixture.from_options, online=True), needs_graph=True),
    "static": StrategySpec(partial(SkillItMixture.from_options, online=False), needs_graph=True),
    "no_graph": StrategySpec(partial(SkillItMixture.from_options, online=True, identity_graph=True)),
    "stratified": StrategySpec(FixedMixture.stratified),
    "random": StrategySpec(FixedMixture.given, needs_proportions=True, uses_graph=False),
    "target_only": StrategySpec(FixedMixture.given, needs_proportions=True, uses_graph=False),
    "skill_curriculum": StrategySpec(partial(SkillCurriculumMixture.from_options, hardest_first=False)),
    "skill_anticurriculum": StrategySpec(partial(SkillCurriculumMixture.from_options, hardest_first=True)),
    # Sample-level curricula draw from the same (imbalanced) pool as random, ordered by the initial loss.
    "curriculum": StrategySpec(FixedMixture.given, sample_order="easy_first", uses_graph=False),
    "anticurriculum": StrategySpec(FixedMixture.given, sample_order="hard_first", uses_graph=False),
    # Beyond the paper: the interaction matrix re-estimated online (Aioli, Chen et al. 2024).
    "aioli": StrategySpec(AioliMixture.from_options, uses_graph=False),
}
"""Every `mixture.strategy`, by name."""


def build_strategy(strategy: str, *, graph: np.ndarray | None, **options: Any) -> MixtureStrategy:
    """Build a registered strategy from resolved values (`StrategyOptions` fields as keywords).

    A missing graph means the identity, which needs a square setting.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; valid strategies: {', '.join(STRATEGIES)}")
    num_train_skills, num_eval_skills = options["num_train_skills"], options["num_eval_skills"]
    if num_train_skills < 1:
        raise ValueError(f"there must be at least one training skill, got k={num_train_skills}")
    spec = STRATEGIES[strategy]
    if graph is None and spec.uses_graph:
        if num_train_skills != num_eval_skills:
            raise ValueError(
                f"no skills graph given for {num_train_skills} training x {num_eval_skills} evaluation skills; "
                "the identity default needs a square setting: set mixture.graph or mixture.graph_path"
            )
        if spec.needs_graph:
            raise ValueError(
                f"mixture.strategy={strategy} needs a skills graph: learn one with `skillit-ray graph --config ...` "
                "and pass mixture.graph_path=<storage>/<run>/graph/graph.json, give mixture.graph, or ask for the "
                "identity graph explicitly with mixture.strategy=no_graph"
            )
        graph = np.eye(num_train_skills)
    if graph is not None:
        graph = _as_graph(graph, num_train_skills, num_eval_skills)
    return STRATEGIES[strategy].build(StrategyOptions(graph=graph, **options))


def resolve_graph(config: JobConfig, train_skills: list[str], eval_skills: list[str]) -> np.ndarray | None:
    """The run's k x m skills graph from `mixture.graph_path` or `mixture.graph`, or None (identity)."""
    from skillit_ray.graph.algorithms import load_graph, load_graph_array

    mixture = config.mixture
    num_train, num_eval = len(train_skills), len(eval_skills)
    if mixture.graph_path:
        columns = eval_skills
        if mixture.setting == "finetuning" and mixture.graph_path.endswith(".npy"):
            square = load_graph_array(mixture.graph_path).shape == (num_train, num_train)
            columns = train_skills if square else columns  # a full k x k graph: take targets below
        graph = load_graph(mixture.graph_path, train_skills, columns)
    elif mixture.graph:
        graph = np.asarray(mixture.graph, dtype=np.float64)
    else:
        return None
    if mixture.setting == "finetuning" and graph.shape == (num_train, num_train) and num_eval != num_train:
        graph = full_graph_columns(graph, train_skills, eval_skills)
    if graph.shape != (num_train, num_eval):
        source = mixture.graph_path or "mixture.graph"
        raise ValueError(
            f"skills graph {source} has shape {graph.shape} but this run has {num_train} training skills "
            f"{train_skills} (rows) and {num_eval} evaluation skills {eval_skills} (columns)"
        )
    if mixture.graph_preprocessing == "paper_binary":
        graph = paper_binary_graph(graph)
    return graph


def strategy_from_config(config: JobConfig, train_skills: list[str], eval_skills: list[str]) -> MixtureStrategy:
    """The configured strategy for these skills: resolve the graph, then build from the registry."""
    mixture = config.mixture
    return build_strategy(
        mixture.strategy,
        graph=resolve_graph(config, train_skills, eval_skills),
        setting=mixture.setting,
        num_train_skills=len(train_skills),
        num_eval_skills=len(eval_skills),
        eta=mixture.eta,
        window=mixture.window,
        loss_reduction=mixture.loss_reduction,
        num_rounds=mixture.num_rounds,
        proportions=mixture.proportions,
        prior=mixture.prior,
        mixing_fraction=mixture.mixing_fraction,
        uniform_mix=mixture.uniform_mix,
        total_steps=config.train.steps,
        seed=config.train.seed,
        aioli_rounds_per_update=mixture.aioli_rounds_per_update,
        aioli_probe_sweeps=mixture.aioli_probe_sweeps,
        aioli_one_hot_factor=mixture.aioli_one_hot_factor,
        aioli_ema=mixture.aioli_ema,
    )
