"""The `graph` section: the short runs that learn the skills graph (paper Algorithms 2 and 3).

Role in the flow: config -> **graph section** -> graph (normalization of the measured drops) and tune
(the short runs as Ray Tune trials). No Ray import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from skillit_ray.config.loading import choice, require
from skillit_ray.config.train import LR_SCHEDULES

GRAPH_METHODS = ("linear", "brute-force")
GRAPH_NORMALIZATIONS = ("raw", "relative")
GRAPH_COMMON_DROP_RULES = ("keep", "row_min", "column_mean")
GRAPH_DIAGONAL_RULES = ("keep", "one", "zero")


@dataclass
class GraphConfig:
    """Skills-graph learning by short runs (paper Algorithms 2 and 3) on Ray Tune."""

    method: str = "linear"
    """"linear" (Alg. 3, one run per training skill) or "brute-force" (Alg. 2, singles and pairs)."""
    steps: int = 100
    """Training steps of each short run (h or H)."""
    measure_at_step: int = 0
    """Step at which the loss drop is read (paper NI: first 100 of 600); 0 means `steps`."""
    learning_rate: float = 0.0
    """Peak learning rate of the short runs; 0 means train.learning_rate."""
    warmup_steps: int = 0
    """Linear warm-up steps of each short run (its own: train.warmup_steps would eat most of a short run)."""
    lr_schedule: str = "constant"
    """Short runs' decay after warm-up: constant (the whole run at full rate), linear or cosine."""
    normalization: str = "relative"
    """"relative" loss drops (divided by the initial loss, as Aioli does: comparable across skills and
    datasets) or "raw" (the paper's loss drops in nats)."""
    common_drop: str = "row_min"
    """"row_min" subtracts from each row the drop its short run gave every skill alike (what all skills
    share, e.g. the answer format: without it a from-scratch graph is nearly complete and the mixture
    collapses; measured in docs/RESULTS.md), "column_mean", or "keep" (the paper)."""
    threshold: float | None = None
    """Entries at or below this become 0 (None keeps negatives, as the official code does)."""
    diagonal: str = "keep"
    """keep, one (official static path) or zero (paper heatmaps)."""
    max_concurrent_trials: int = 0
    """Trials running at once; 0 lets Ray Tune fill the cluster."""
    runs_per_trial: int = 0
    """Short runs per Tune trial, one after another in the trial's process, so a trial's start-up is paid
    once: 0 gives every trial slot one trial (runs / slots, rounded up); 1 is a trial per run."""
    cpus_per_trial: float = 1.0
    """CPUs per short run."""
    gpus_per_trial: float = 0.0
    """GPUs per short run (fractions share a GPU)."""
    max_failures: int = 1
    """Retries of a failed trial (all its runs) before the graph run fails."""
    output_path: str = ""
    """Where graph.json/graph.npy/heatmap go (a directory or URI); empty means <storage_path>/<run name>/graph."""

    def validate(self) -> None:
        choice("graph.method", self.method, GRAPH_METHODS)
        choice("graph.normalization", self.normalization, GRAPH_NORMALIZATIONS)
        choice("graph.diagonal", self.diagonal, GRAPH_DIAGONAL_RULES)
        choice("graph.common_drop", self.common_drop, GRAPH_COMMON_DROP_RULES)
        choice("graph.lr_schedule", self.lr_schedule, LR_SCHEDULES)
        require(self.steps >= 1, f"graph.steps={self.steps} must be >= 1")
        require(
            0 <= self.measure_at_step <= self.steps,
            f"graph.measure_at_step={self.measure_at_step} must be in 0..graph.steps={self.steps}",
        )
        require(
            math.isfinite(self.learning_rate) and self.learning_rate >= 0,
            f"graph.learning_rate={self.learning_rate} must be >= 0 (0: train.learning_rate)",
        )
        require(
            0 <= self.warmup_steps < self.steps,
            f"graph.warmup_steps={self.warmup_steps} must be in 0..graph.steps-1={self.steps - 1}",
        )
        require(self.max_failures >= 0, "graph.max_failures must be >= 0")
        require(self.runs_per_trial >= 0, f"graph.runs_per_trial={self.runs_per_trial} must be >= 0 (0: automatic)")

    def measure_step(self) -> int:
        """The step of a short run at which the loss drop is read."""
        return self.measure_at_step or self.steps
