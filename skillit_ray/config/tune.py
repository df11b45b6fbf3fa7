"""The `tune` section: the search over eta, rounds and window for Skill-it (Ray Tune).

Role in the flow: config -> **tune section** -> tune (`tune/search.py`). No Ray import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from skillit_ray.config.loading import choice, require

CANDIDATES = ("auto", "skillit", "target_only", "proportions")
"""The tuner's own candidate names; any other entry of `tune.candidates` names a registered strategy
(`skillit_ray/mixture/strategies/`), checked by `tune/search.py:candidate_settings` before Ray starts."""


@dataclass
class TuneConfig:
    """Search over eta, rounds and window for Skill-it with Ray Tune."""

    eta_min: float = 0.05
    """Lower end of the log-uniform eta range."""
    eta_max: float = 2.0
    """Upper end of the log-uniform eta range."""
    eta_grid: list[float] = field(default_factory=list)
    """Try exactly these etas (a deterministic grid search, each with every rounds/window choice) instead
    of `num_samples` log-uniform draws; e.g. [0.05, 0.1, 0.2, 0.5, 1.0]."""
    num_rounds_choices: list[int] = field(default_factory=lambda: [3, 6])
    """Candidate numbers of rounds T."""
    window_choices: list[int] = field(default_factory=lambda: [3])
    """Candidate windows w."""
    num_samples: int = 8
    """Settings sampled from the space."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Seeds run per setting; the objective is their mean."""
    metric: str = "mean_val_loss"
    """mean_val_loss (minimized) or mean_accuracy (maximized)."""
    use_asha: bool = True
    """Stop poor trials early with ASHA at evaluation points."""
    max_concurrent_trials: int = 0
    """Trials at once; 0 lets Ray Tune fill the cluster."""
    cpus_per_trial: float = 1.0
    """CPUs per trial."""
    gpus_per_trial: float = 0.0
    """GPUs per trial."""
    extend_at_edges: bool = True
    """When the best eta, number of rounds or window is the largest or smallest tried, try one step further
    (`edge_factor`) with the others held at the best, until the objective turns or a bound is reached."""
    edge_factor: float = 3.0
    """The step past an edge: eta x3 or /3; rounds and window x3 or /3 rounded, at least one more or fewer."""
    eta_bounds: list[float] = field(default_factory=lambda: [0.001, 1000.0])
    """[lowest, highest] eta an edge extension may try."""
    max_edge_extensions: int = 4
    """Extension steps at most (each tries every dimension at an edge once)."""
    candidates: list[str] = field(default_factory=lambda: ["auto"])
    """What the search chooses among, all scored by the same short runs on the same `seeds`: skillit (its best
    setting), target_only (the targets of a fine-tuning run), proportions (the given `mixture.proportions`),
    or any registered strategy by name (stratified, curriculum, skill_curriculum, static, ..., run with the
    config's own `mixture` options); "auto" is skillit + stratified + target_only in fine-tuning +
    proportions when given. [skillit] pins Skill-it; [auto, skill_curriculum] adds a baseline."""

    def validate(self) -> None:
        require(
            0 < self.eta_min <= self.eta_max,
            f"tune.eta_min={self.eta_min} and tune.eta_max={self.eta_max} must satisfy 0 < eta_min <= eta_max",
        )
        require(bool(self.num_rounds_choices), "tune.num_rounds_choices must list at least one value")
        for eta in self.eta_grid:
            require(math.isfinite(eta) and eta > 0, f"tune.eta_grid has {eta}; every eta must be > 0")
        for window in self.window_choices:
            require(window >= 1, f"tune.window_choices has {window}; each must be >= 1")
        require(self.num_samples >= 1, "tune.num_samples must be >= 1")
        require(bool(self.seeds), "tune.seeds must list at least one seed")
        choice("tune.metric", self.metric, ("mean_val_loss", "mean_accuracy"))
        require(self.edge_factor > 1, f"tune.edge_factor={self.edge_factor} must be > 1")
        require(
            len(self.eta_bounds) == 2 and 0 < self.eta_bounds[0] < self.eta_bounds[1],
            f"tune.eta_bounds={self.eta_bounds} must be [lowest, highest] with 0 < lowest < highest",
        )
        require(self.max_edge_extensions >= 0, "tune.max_edge_extensions must be >= 0")
        require(bool(self.candidates), "tune.candidates must list at least one (e.g. [skillit] to pin Skill-it)")
        for candidate in self.candidates:
            require(
                isinstance(candidate, str) and bool(candidate),
                f"tune.candidates has {candidate!r}; each entry must be one of {', '.join(CANDIDATES)} or a "
                "strategy name (`skillit-ray keys` lists them)",
            )

    def validate_for_steps(self, num_steps: int) -> None:
        """Checks that matter only when tuning: every candidate number of rounds fits the run's steps."""
        for rounds in self.num_rounds_choices:
            require(
                1 <= rounds <= num_steps,
                f"tune.num_rounds_choices has {rounds}; each must be in 1..train.steps={num_steps}",
            )
