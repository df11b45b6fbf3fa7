"""Config sections for how a job runs: Ray Train scaling, the run's name and storage, the graph
short runs and the eta/rounds/window search.

Role in the flow: part of `config.py` (which imports these sections into `JobConfig` and re-exports
them); split out only to keep each file small. Same rules: every field has a docstring, each
section checks its own values in `validate()`, derived values are methods. No Ray import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

LR_SCHEDULES = ("linear", "cosine", "constant")
GRAPH_METHODS = ("linear", "brute-force")
GRAPH_NORMALIZATIONS = ("raw", "relative")
GRAPH_DIAGONAL_RULES = ("keep", "one", "zero")


def require(condition: bool, message: str) -> None:
    """Raise ValueError(message) unless the condition holds (every config check goes through here)."""
    if not condition:
        raise ValueError(message)


def choice(key: str, value: str, choices: tuple[str, ...] | list[str]) -> None:
    require(value in choices, f"{key}={value!r} is not valid; choose one of {', '.join(choices)}")


@dataclass
class ScalingConfig:
    """Ray Train data parallelism; maps 1:1 onto `ray.train.ScalingConfig`."""

    num_workers: int = 1
    """Data-parallel workers (one process each; one GPU each when use_gpu)."""
    use_gpu: bool = False
    """Place each worker on a GPU (NCCL) instead of CPU (gloo)."""
    cpus_per_worker: float = 1.0
    """CPUs reserved per worker."""
    gpus_per_worker: float = 1.0
    """GPUs per worker when use_gpu (fractions allowed for small trials)."""
    torch_backend: str = "auto"
    """torch.distributed backend; auto = "cpu:gloo,cuda:nccl" on GPU (gradients over NCCL, the loop's
    small CPU collectives over gloo) and "gloo" on CPU."""

    def validate(self) -> None:
        require(self.num_workers >= 1, f"scaling.num_workers={self.num_workers} must be >= 1")
        require(self.cpus_per_worker >= 0, "scaling.cpus_per_worker must be >= 0")
        if self.use_gpu:
            require(self.gpus_per_worker > 0, "scaling.use_gpu=true needs scaling.gpus_per_worker > 0")
        backends = [item.split(":")[-1] for item in self.resolved_torch_backend().split(",")]
        require(
            "gloo" in backends,
            f"scaling.torch_backend={self.torch_backend!r} has no gloo: the training loop's small collectives "
            'run on CPU tensors; use "auto", "gloo" or "cpu:gloo,cuda:nccl"',
        )

    def resolved_torch_backend(self) -> str:
        if self.torch_backend != "auto":
            return self.torch_backend
        return "cpu:gloo,cuda:nccl" if self.use_gpu else "gloo"


@dataclass
class RunConfig:
    """Naming, storage and resume of a run."""

    name: str = "run"
    """Run name; outputs go to <storage_path>/<name>/."""
    storage_path: str = "runs"
    """Local directory or cloud URI (s3://, gs://) for checkpoints and run outputs."""
    resume: bool = True
    """Resume from the latest checkpoint of this run name when one exists."""
    num_checkpoints_to_keep: int = 2
    """Most recent checkpoints kept on storage."""
    max_failures: int = 2
    """Times Ray Train restarts failed workers from the latest checkpoint before the run fails."""
    ray_address: str = ""
    """Ray cluster address; empty starts or joins a local Ray."""
    local_ray: str = "lean"
    """A local Ray started by a run: "lean" (no idle workers started ahead of use, no preemption-watcher
    actor) or "full" (Ray's defaults). Both keep the dashboard on 127.0.0.1: Ray Train's clean-up asks
    its State API."""

    def validate(self) -> None:
        require(
            bool(self.name) and self.name not in (".", "..") and not any(char in self.name for char in "/\\"),
            f"run.name={self.name!r} must be a plain name (not '.' or '..', no '/' or '\\'): it names the run's "
            "directory under run.storage_path",
        )
        require(bool(self.storage_path), "run.storage_path must name a directory or s3:// / gs:// URI")
        require(self.num_checkpoints_to_keep >= 1, "run.num_checkpoints_to_keep must be >= 1")
        require(self.max_failures >= 0, f"run.max_failures={self.max_failures} must be >= 0")
        require(self.local_ray in ("lean", "full"), f"run.local_ray={self.local_ray!r} must be 'lean' or 'full'")


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
        choice("graph.common_drop", self.common_drop, ("keep", "row_min", "column_mean"))
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

    def validate_for_steps(self, num_steps: int) -> None:
        """Checks that matter only when tuning: every candidate number of rounds fits the run's steps."""
        for rounds in self.num_rounds_choices:
            require(
                1 <= rounds <= num_steps,
                f"tune.num_rounds_choices has {rounds}; each must be in 1..train.steps={num_steps}",
            )
