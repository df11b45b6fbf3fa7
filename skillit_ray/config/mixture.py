"""The `mixture` section: which strategy chooses the data, in which setting, with which graph and eta.

Role in the flow: config -> **mixture section** -> mixture (the strategy registry builds the strategy
from it). The keys here are read by several strategies or stages (the graph and eta by Skill-it, the
graph warnings and the tuner; rounds by the loop). What only one strategy family reads sits under its
section (`mixture.aioli.*`, `mixture.curriculum.*`, `mixture.skill_curriculum.*`), typed and checked by
the strategy itself (`skillit_ray/mixture/strategies/`), so adding a strategy changes nothing here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from skillit_ray.config.loading import choice, require

SETTINGS = ("pretraining", "finetuning", "out_of_domain")
GRAPH_PREPROCESSING = ("none", "paper_binary")
LOSS_REDUCTIONS = ("auto", "sum", "mean")


def window_reduction(setting: str, loss_reduction: str) -> str:
    """ "sum" or "mean" over the window; "auto" is mean for fine-tuning, sum otherwise (official code)."""
    if loss_reduction != "auto":
        return loss_reduction
    return "mean" if setting == "finetuning" else "sum"


def _finite_non_negative(key: str, values: list[float]) -> None:
    for index, value in enumerate(values):
        require(
            math.isfinite(value) and value >= 0,
            f"{key}[{index}]={value!r} must be finite and >= 0; fix the list {values}",
        )
    if values:
        require(sum(values) > 0, f"{key}={values} sums to 0; give at least one positive weight")


@dataclass
class MixtureConfig:
    """Which data-selection strategy runs and its Skill-it hyperparameters."""

    OPTION_SECTIONS: ClassVar[str] = "options"
    MOVED_KEYS: ClassVar[dict[str, str]] = {
        "mixing_fraction": "mixture.skill_curriculum.mixing_fraction",
        "curriculum_num_epochs": "mixture.curriculum.num_epochs",
        "curriculum_pool_size": "mixture.curriculum.pool_size",
        "aioli_rounds_per_update": "mixture.aioli.rounds_per_update",
        "aioli_probe_sweeps": "mixture.aioli.probe_sweeps",
        "aioli_one_hot_factor": "mixture.aioli.one_hot_factor",
        "aioli_ema": "mixture.aioli.ema",
    }
    """Keys of one strategy family that moved under its section."""

    strategy: str = "skillit"
    """skillit, static, no_graph, stratified, random, target_only, skill_curriculum, skill_anticurriculum,
    curriculum, anticurriculum, aioli, or any strategy registered in skillit_ray/mixture/strategies/
    (`skillit-ray keys` lists them with their options)."""
    setting: str = "pretraining"
    """pretraining (eval = train skills), finetuning (eval = target skills), out_of_domain."""
    graph: list[list[float]] = field(default_factory=list)
    """Skills graph A, k x m (rows = training skills, columns = evaluation skills). Empty: identity
    (square settings only) unless `graph_path` is set."""
    graph_path: str = ""
    """A .npy file or a `graph.json` written by `skillit-ray graph`; overrides `graph`."""
    graph_preprocessing: str = "none"
    """"paper_binary" applies the official code's off-diagonal 1 -> 0.5 rule to a binary graph;
    "none" uses the graph as given. Never applied silently."""
    eta: float = 0.5
    """Mirror-descent step size (official LEGO 0.5, addition 0.1, NI 0.2-0.8)."""
    window: int = 3
    """Number of most recent evaluations aggregated per update (the official code counts
    evaluations, not rounds)."""
    loss_reduction: str = "auto"
    """How the window is aggregated: "sum" (pre-training, out-of-domain), "mean" (fine-tuning);
    "auto" picks by setting as the official code does."""
    num_rounds: int = 6
    """Rounds T; the mixture changes only at round boundaries."""
    proportions: list[float] = field(default_factory=list)
    """Fixed mixture for "random" (e.g. LEGO 1:1:1:3:5), "target_only" and the sample-level curricula'
    pool; normalized."""
    prior: list[float] = field(default_factory=list)
    """Skill-it prior over training skills (official `weights_init`, default ones)."""
    target_skills: list[str] = field(default_factory=list)
    """Fine-tuning: the target evaluation skill(s)."""
    uniform_mix: float = 0.0
    """Collapse guard for skillit/static/no_graph/aioli, a deviation from the paper (0: off, the paper):
    p = (1 - uniform_mix) p + uniform_mix / k, so every skill keeps at least uniform_mix / k of the data."""
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-family strategy options by section name (`mixture.aioli.*`, ...), typed by the strategy."""

    def validate(self) -> None:
        require(bool(self.strategy), "mixture.strategy must name a strategy; `skillit-ray keys` lists them")
        choice("mixture.setting", self.setting, SETTINGS)
        choice("mixture.graph_preprocessing", self.graph_preprocessing, GRAPH_PREPROCESSING)
        choice("mixture.loss_reduction", self.loss_reduction, LOSS_REDUCTIONS)
        require(
            math.isfinite(self.eta) and self.eta > 0,
            f"mixture.eta={self.eta} must be a finite number > 0 (official values 0.1-0.8)",
        )
        require(self.window >= 1, f"mixture.window={self.window} must be >= 1 (evaluations per update)")
        require(self.num_rounds >= 1, f"mixture.num_rounds={self.num_rounds} must be >= 1")
        require(0.0 <= self.uniform_mix <= 1.0, f"mixture.uniform_mix={self.uniform_mix} must be in [0, 1] (0 = off)")
        self._validate_graph()
        _finite_non_negative("mixture.proportions", self.proportions)
        _finite_non_negative("mixture.prior", self.prior)
        for weight in self.prior:
            require(weight > 0, f"mixture.prior={self.prior} must be > 0 everywhere (it multiplies exp(...))")

    def _validate_graph(self) -> None:
        if not self.graph:
            return
        width = len(self.graph[0])
        require(width >= 1, "mixture.graph rows must not be empty")
        for row_index, row in enumerate(self.graph):
            require(
                len(row) == width,
                f"mixture.graph row {row_index} has {len(row)} entries, row 0 has {width}; "
                "the graph must be k x m (rows = training skills, columns = evaluation skills)",
            )
            for column_index, value in enumerate(row):
                require(
                    math.isfinite(value),
                    f"mixture.graph[{row_index}][{column_index}]={value} is not finite; use real numbers",
                )

    def window_reduction(self) -> str:
        """How the window of losses is aggregated: `loss_reduction`, "auto" resolved by setting."""
        return window_reduction(self.setting, self.loss_reduction)
