"""Typed configuration for every stage: data -> model -> mixture -> train -> graph/tune.

Role in the flow: the first thing every entry point calls. A run is one YAML file plus
`--set a.b=c` overrides, loaded into `JobConfig` by `load_config`. Unknown keys are errors that
list the valid keys; every value is checked here, once, before any Ray work starts
(`JobConfig.validate`), so a typo costs seconds, not a cluster hour.

No Ray import: this module is shared by the driver, the Train workers, Tune trials and tests.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SETTINGS = ("pretraining", "finetuning", "out_of_domain")
STRATEGIES = (
    "skillit",
    "random",
    "stratified",
    "static",
    "no_graph",
    "skill_curriculum",
    "skill_anticurriculum",
    "curriculum",
    "anticurriculum",
    "target_only",
)
DATA_SOURCES = ("lego", "addition", "parquet")
GRAPH_PREPROCESSING = ("none", "paper_binary")
LOSS_REDUCTIONS = ("auto", "sum", "mean")
LR_SCHEDULES = ("linear", "cosine", "constant")
PRECISIONS = ("auto", "fp32", "bf16")
GRAPH_METHODS = ("linear", "brute-force")
GRAPH_NORMALIZATIONS = ("raw", "relative")
GRAPH_DIAGONAL_RULES = ("keep", "one", "zero")


@dataclass
class DataConfig:
    """Where the skills come from and how samples become token sequences."""

    source: str = "lego"
    """"lego" or "addition" (built-in generators) or "parquet" (files named by `path`)."""
    path: str = ""
    """Dataset directory written by `skillit-ray prepare` (train/<skill>/, val/<skill>/, manifest.json).
    Required for source "parquet"; for the generators, empty means fresh samples are generated on
    the fly each round (as the paper does) and a path means the prepared shards are streamed."""
    train_skills: list[str] = field(default_factory=list)
    """Ordered training skills (rows of the skills graph). Empty means every skill of the source."""
    eval_skills: list[str] = field(default_factory=list)
    """Ordered evaluation skills (columns of the graph). Empty means the training skills
    (continual pre-training) or `mixture.target_skills` (fine-tuning)."""
    text_column: str = "text"
    """Parquet column holding the training text."""
    sequence_length: int = 48
    """Tokens per training sequence (pad or truncate; text sources are packed to this length)."""
    pack_sequences: bool = False
    """Concatenate documents (EOS-separated) into full sequences instead of padding each one."""
    num_val_per_skill: int = 100
    """Held-out validation samples per evaluation skill (official code: 100)."""
    lego_num_variables: int = 5
    """LEGO chain length k; also the number of LEGO skills."""
    addition_num_digits: int = 3
    """Digits per addition operand; also the number of addition skills."""
    shuffle_buffer_rows: int = 1000
    """Rows in each per-skill local shuffle buffer (0 disables shuffling inside a stream)."""
    parquet_split: str = "files"
    """How parquet rows reach ranks: "files" (each rank reads its own part files: I/O scales with
    workers, but the global batch and a resume depend on the worker count) or "positions" (the skill
    is one seeded sequence of rows and each rank takes its global positions of the step, like the
    generator streams: runs and resumes are identical for any worker count; every rank reads the
    text column of every part it reaches and tokenizes only its own rows)."""
    parquet_reader: str = "auto"
    """How a worker reads a parquet skill: "ray_data" (a Ray Data read_parquet + map_batches pipeline
    per skill: reads and tokenizes in other Ray processes), "arrow" (pyarrow in the worker process:
    no per-skill Ray tasks, for hundreds of skills) or "auto" (ray_data up to
    `data.RAY_DATA_MAX_SKILLS` training skills, arrow above). Without packing both give the same rows
    in the same order."""
    tokenizer_path: str = ""
    """Local tokenizer directory for parquet sources; empty uses the one written by `prepare`."""


@dataclass
class ModelConfig:
    """The causal LM, built from a transformers config (no hub download)."""

    size: str = "tiny"
    """Named size from `skillit_ray.model.MODEL_SIZES` ("tiny", "small", "gpt2-124m", "gpt-neo-125m", ...)."""
    pretrained_path: str = ""
    """Local directory of a saved transformers model to start from (continual pre-training)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Extra transformers-config fields, e.g. {n_layer: 3}."""


@dataclass
class MixtureConfig:
    """Which data-selection strategy runs and its Skill-it hyperparameters."""

    strategy: str = "skillit"
    """One of STRATEGIES: skillit, random, stratified, static, no_graph, skill_curriculum,
    skill_anticurriculum, curriculum, anticurriculum, target_only."""
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
    """Fixed mixture for "random" (e.g. LEGO 1:1:1:3:5) and "target_only"; normalized."""
    prior: list[float] = field(default_factory=list)
    """Skill-it prior over training skills (official `weights_init`, default ones)."""
    target_skills: list[str] = field(default_factory=list)
    """Fine-tuning: the target evaluation skill(s)."""
    mixing_fraction: float = 0.4
    """Skill-(anti)curriculum: share of each phase given to earlier skills (paper 0.4)."""
    curriculum_num_epochs: int = 5
    """Sample-level curriculum pacing: rounds until the whole ordered pool is available (M)."""
    curriculum_pool_size: int = 0
    """Sample-level curriculum: samples scored by the initial model (0: steps x batch)."""


@dataclass
class TrainConfig:
    """The optimization loop (per global step, all workers together)."""

    steps: int = 300
    """Optimizer steps in the whole run."""
    batch_size: int = 32
    """Global batch in samples per optimizer step, summed over all workers."""
    micro_batch_size: int = 0
    """Samples per forward pass on one worker; 0 means the worker's whole share (no accumulation)."""
    learning_rate: float = 1e-3
    """Peak AdamW learning rate (official 5e-5 for pretrained 125M; from-scratch tiny models need more)."""
    warmup_steps: int = 50
    """Linear warmup steps (official 50)."""
    lr_schedule: str = "linear"
    """Decay after warmup: linear (official), cosine or constant."""
    weight_decay: float = 0.01
    """AdamW weight decay, not applied to biases and LayerNorm weights (official)."""
    grad_clip_norm: float = 1.0
    """Gradient-norm clip (official 1.0); 0 disables."""
    eval_every_n_steps: int = 25
    """Per-skill validation cadence in steps; each evaluation enters the Skill-it window."""
    checkpoint_every_n_steps: int = 0
    """Checkpoint cadence in steps; 0 means at every round boundary."""
    seed: int = 0
    """Seeds model init, data order and quota splits. Same seed, same mixture trajectory."""
    precision: str = "auto"
    """auto (bf16 autocast on GPU, fp32 on CPU), fp32, bf16."""
    compile: bool = False
    """torch.compile the model (GPU runs)."""
    log_every_n_steps: int = 10
    """Training-loss log cadence."""

    def steps_in_round(self, round_index: int, num_rounds: int) -> tuple[int, int]:
        """[start, end) steps of a round: round r covers steps r*S//T .. (r+1)*S//T.

        When steps is not divisible by rounds the rounds differ by at most one step.
        """
        return (round_index * self.steps // num_rounds, (round_index + 1) * self.steps // num_rounds)

    def round_of_step(self, step: int, num_rounds: int) -> int:
        """The round a step belongs to (inverse of `steps_in_round`)."""
        return ((step + 1) * num_rounds - 1) // self.steps


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


@dataclass
class GraphConfig:
    """Skills-graph learning by short runs (paper Algorithms 2 and 3) on Ray Tune."""

    method: str = "linear"
    """"linear" (Alg. 3, one run per training skill) or "brute-force" (Alg. 2, singles and pairs)."""
    steps: int = 100
    """Training steps of each short run (h or H)."""
    measure_at_step: int = 0
    """Step at which the loss drop is read (paper NI: first 100 of 600); 0 means `steps`."""
    normalization: str = "raw"
    """"raw" loss drops, or "relative" to the initial loss (as Aioli does)."""
    threshold: float | None = None
    """Entries at or below this become 0 (None keeps negatives, as the official code does)."""
    diagonal: str = "keep"
    """keep, one (official static path) or zero (paper heatmaps)."""
    max_concurrent_trials: int = 0
    """Trials running at once; 0 lets Ray Tune fill the cluster."""
    cpus_per_trial: float = 1.0
    """CPUs per short run."""
    gpus_per_trial: float = 0.0
    """GPUs per short run (fractions share a GPU)."""
    max_failures: int = 1
    """Retries of a failed trial before the graph run fails."""
    output_path: str = ""
    """Where graph.json/graph.npy/heatmap go; empty means <storage_path>/<run name>/graph."""


@dataclass
class TuneConfig:
    """Search over eta, rounds and window for Skill-it with Ray Tune."""

    eta_min: float = 0.05
    """Lower end of the log-uniform eta range."""
    eta_max: float = 2.0
    """Upper end of the log-uniform eta range."""
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


@dataclass
class JobConfig:
    """Everything one `skillit-ray` command needs."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    mixture: MixtureConfig = field(default_factory=MixtureConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    run: RunConfig = field(default_factory=RunConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)

    def validate(self) -> JobConfig:
        """Check every value that does not need the data; raises ValueError naming key and fix."""
        _validate(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON friendly)."""
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------- loading


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> JobConfig:
    """Load a YAML file (optional) and apply `a.b=c` overrides, then validate.

    Args:
        path: YAML file whose top-level keys are sections of JobConfig; None for defaults.
        overrides: strings "section.key=value"; the value is parsed as YAML ("1e-3", "[1, 2]").

    Raises:
        ValueError: missing file, unknown section or key (valid keys listed), wrong type,
            malformed override, or an invalid value.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config file {path} does not exist; pass an existing YAML file to --config")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {path} must hold a mapping of sections, got {type(loaded).__name__}")
        raw = loaded
    for override in overrides or []:
        _apply_override(raw, override)
    config = config_from_dict(raw)
    return config.validate()


def config_from_dict(raw: dict[str, Any]) -> JobConfig:
    """Build a JobConfig from a nested dict, rejecting unknown keys and wrong types."""
    return _build_dataclass(JobConfig, raw, prefix="")


def _apply_override(raw: dict[str, Any], override: str) -> None:
    if "=" not in override:
        raise ValueError(f"override {override!r} must look like section.key=value, e.g. train.steps=100")
    dotted_key, _, value_text = override.partition("=")
    keys = dotted_key.strip().split(".")
    if any(not key for key in keys):
        raise ValueError(f"override {override!r} has an empty key; use section.key=value")
    value = yaml.safe_load(value_text) if value_text.strip() else ""
    node = raw
    for key in keys[:-1]:
        existing = node.get(key)
        if existing is None:
            existing = node[key] = {}
        if not isinstance(existing, dict):
            raise ValueError(f"override {override!r}: {key} is a value, not a section")
        node = existing
    node[keys[-1]] = value


def _build_dataclass(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "top level"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    field_names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(field_names))
    if unknown:
        raise ValueError(
            f"unknown key(s) {', '.join(prefix + k for k in unknown)} in {where}; valid keys: {', '.join(field_names)}"
        )
    values = {}
    for name in field_names:
        if name not in raw:
            continue
        values[name] = _coerce(hints[name], raw[name], prefix + name)
    return cls(**values)


def _coerce(annotation: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(annotation):
        return _build_dataclass(annotation, value, key + ".")
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [arg for arg in args if arg is not type(None)]
        return _coerce(inner[0], value, key)
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{key} must be a list, got {value!r}")
        return [_coerce(args[0], item, f"{key}[{index}]") for index, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key} must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string; accept what float() accepts
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{key} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config annotation {annotation} for {key}")  # our bug, not the user's


# ----------------------------------------------------------------------------- validation


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    _require(value in choices, f"{key}={value!r} is not valid; choose one of {', '.join(choices)}")


def _finite_non_negative(key: str, values: list[float], need_positive_sum: bool = True) -> None:
    for index, value in enumerate(values):
        _require(
            math.isfinite(value) and value >= 0,
            f"{key}[{index}]={value!r} must be finite and >= 0; fix the list {values}",
        )
    if need_positive_sum and values:
        _require(sum(values) > 0, f"{key}={values} sums to 0; give at least one positive weight")


def _validate(config: JobConfig) -> None:
    data, mixture, train = config.data, config.mixture, config.train
    _choice("data.source", data.source, DATA_SOURCES)
    if data.source == "parquet":
        _require(
            bool(data.path),
            "data.source=parquet needs data.path (a directory written by `skillit-ray prepare`)",
        )
    _require(data.sequence_length >= 8, f"data.sequence_length={data.sequence_length} must be >= 8")
    _require(data.num_val_per_skill >= 1, f"data.num_val_per_skill={data.num_val_per_skill} must be >= 1")
    _require(
        1 <= data.lego_num_variables <= 26,
        f"data.lego_num_variables={data.lego_num_variables} must be in 1..26 (one letter per variable)",
    )
    _require(data.addition_num_digits >= 1, f"data.addition_num_digits={data.addition_num_digits} must be >= 1")
    _require(data.shuffle_buffer_rows >= 0, f"data.shuffle_buffer_rows={data.shuffle_buffer_rows} must be >= 0")
    _require(
        data.parquet_split in ("files", "positions"),
        f"data.parquet_split={data.parquet_split!r} must be files or positions",
    )
    _require(
        not (data.parquet_split == "positions" and data.pack_sequences),
        "data.parquet_split=positions addresses one document per row; set data.pack_sequences=false or "
        "use data.parquet_split=files",
    )
    _require(
        data.parquet_reader in ("auto", "ray_data", "arrow"),
        f"data.parquet_reader={data.parquet_reader!r} must be one of auto, ray_data, arrow",
    )
    for key, names in (("data.train_skills", data.train_skills), ("data.eval_skills", data.eval_skills)):
        _require(len(set(names)) == len(names), f"{key}={names} lists a skill twice; list each skill once")

    _choice("mixture.strategy", mixture.strategy, STRATEGIES)
    _choice("mixture.setting", mixture.setting, SETTINGS)
    _choice("mixture.graph_preprocessing", mixture.graph_preprocessing, GRAPH_PREPROCESSING)
    _choice("mixture.loss_reduction", mixture.loss_reduction, LOSS_REDUCTIONS)
    _require(
        math.isfinite(mixture.eta) and mixture.eta > 0,
        f"mixture.eta={mixture.eta} must be a finite number > 0 (official values 0.1-0.8)",
    )
    _require(mixture.window >= 1, f"mixture.window={mixture.window} must be >= 1 (evaluations per update)")
    _require(mixture.num_rounds >= 1, f"mixture.num_rounds={mixture.num_rounds} must be >= 1")
    _require(
        0.0 <= mixture.mixing_fraction < 1.0,
        f"mixture.mixing_fraction={mixture.mixing_fraction} must be in [0, 1)",
    )
    _require(mixture.curriculum_num_epochs >= 1, "mixture.curriculum_num_epochs must be >= 1")
    _require(mixture.curriculum_pool_size >= 0, "mixture.curriculum_pool_size must be >= 0")
    if mixture.graph:
        width = len(mixture.graph[0])
        _require(width >= 1, "mixture.graph rows must not be empty")
        for row_index, row in enumerate(mixture.graph):
            _require(
                len(row) == width,
                f"mixture.graph row {row_index} has {len(row)} entries, row 0 has {width}; "
                "the graph must be k x m (rows = training skills, columns = evaluation skills)",
            )
            for column_index, value in enumerate(row):
                _require(
                    math.isfinite(value),
                    f"mixture.graph[{row_index}][{column_index}]={value} is not finite; use real numbers",
                )
    _finite_non_negative("mixture.proportions", mixture.proportions)
    _finite_non_negative("mixture.prior", mixture.prior)
    for weight in mixture.prior:
        _require(weight > 0, f"mixture.prior={mixture.prior} must be > 0 everywhere (it multiplies exp(...))")
    if mixture.strategy in ("random", "target_only"):
        _require(
            bool(mixture.proportions),
            f"mixture.strategy={mixture.strategy} needs mixture.proportions, e.g. [1, 1, 1, 3, 5] for LEGO",
        )
    if mixture.setting == "finetuning":
        _require(
            bool(mixture.target_skills) or bool(data.eval_skills),
            "mixture.setting=finetuning needs mixture.target_skills (the skill(s) to learn)",
        )
    if mixture.setting == "out_of_domain":
        _require(
            bool(data.eval_skills),
            "mixture.setting=out_of_domain needs data.eval_skills (evaluation skills separate from training)",
        )

    _require(train.steps >= 1, f"train.steps={train.steps} must be >= 1")
    _require(
        mixture.num_rounds <= train.steps,
        f"mixture.num_rounds={mixture.num_rounds} exceeds train.steps={train.steps}; a round needs >= 1 step",
    )
    _require(train.batch_size >= 1, f"train.batch_size={train.batch_size} must be >= 1")
    _require(
        train.batch_size >= config.scaling.num_workers,
        f"train.batch_size={train.batch_size} is smaller than scaling.num_workers={config.scaling.num_workers}; "
        "every worker needs at least one sample per step",
    )
    _require(train.micro_batch_size >= 0, f"train.micro_batch_size={train.micro_batch_size} must be >= 0")
    _require(
        math.isfinite(train.learning_rate) and train.learning_rate > 0,
        f"train.learning_rate={train.learning_rate} must be > 0",
    )
    _require(train.warmup_steps >= 0, f"train.warmup_steps={train.warmup_steps} must be >= 0")
    _choice("train.lr_schedule", train.lr_schedule, LR_SCHEDULES)
    _choice("train.precision", train.precision, PRECISIONS)
    _require(train.eval_every_n_steps >= 1, f"train.eval_every_n_steps={train.eval_every_n_steps} must be >= 1")
    _require(train.checkpoint_every_n_steps >= 0, "train.checkpoint_every_n_steps must be >= 0 (0: round ends)")
    _require(train.grad_clip_norm >= 0, f"train.grad_clip_norm={train.grad_clip_norm} must be >= 0")
    _require(train.log_every_n_steps >= 1, "train.log_every_n_steps must be >= 1")

    scaling = config.scaling
    _require(scaling.num_workers >= 1, f"scaling.num_workers={scaling.num_workers} must be >= 1")
    _require(scaling.cpus_per_worker >= 0, "scaling.cpus_per_worker must be >= 0")
    if scaling.use_gpu:
        _require(scaling.gpus_per_worker > 0, "scaling.use_gpu=true needs scaling.gpus_per_worker > 0")
    backends = [item.split(":")[-1] for item in scaling.resolved_torch_backend().split(",")]
    _require(
        "gloo" in backends,
        f"scaling.torch_backend={scaling.torch_backend!r} has no gloo: the training loop's small collectives "
        'run on CPU tensors; use "auto", "gloo" or "cpu:gloo,cuda:nccl"',
    )

    run = config.run
    _require(bool(run.name) and "/" not in run.name, f"run.name={run.name!r} must be a non-empty name without '/'")
    _require(bool(run.storage_path), "run.storage_path must name a directory or s3:// / gs:// URI")
    _require(run.num_checkpoints_to_keep >= 1, "run.num_checkpoints_to_keep must be >= 1")
    _require(run.max_failures >= 0, f"run.max_failures={run.max_failures} must be >= 0")

    graph = config.graph
    _choice("graph.method", graph.method, GRAPH_METHODS)
    _choice("graph.normalization", graph.normalization, GRAPH_NORMALIZATIONS)
    _choice("graph.diagonal", graph.diagonal, GRAPH_DIAGONAL_RULES)
    _require(graph.steps >= 1, f"graph.steps={graph.steps} must be >= 1")
    _require(
        0 <= graph.measure_at_step <= graph.steps,
        f"graph.measure_at_step={graph.measure_at_step} must be in 0..graph.steps={graph.steps}",
    )
    _require(graph.max_failures >= 0, "graph.max_failures must be >= 0")

    tune = config.tune
    _require(
        0 < tune.eta_min <= tune.eta_max,
        f"tune.eta_min={tune.eta_min} and tune.eta_max={tune.eta_max} must satisfy 0 < eta_min <= eta_max",
    )
    _require(bool(tune.num_rounds_choices), "tune.num_rounds_choices must list at least one value")
    for rounds in tune.num_rounds_choices:
        _require(
            1 <= rounds <= train.steps,
            f"tune.num_rounds_choices has {rounds}; each must be in 1..train.steps",
        )
    for window in tune.window_choices:
        _require(window >= 1, f"tune.window_choices has {window}; each must be >= 1")
    _require(tune.num_samples >= 1, "tune.num_samples must be >= 1")
    _require(bool(tune.seeds), "tune.seeds must list at least one seed")
    _choice("tune.metric", tune.metric, ("mean_val_loss", "mean_accuracy"))


def describe_keys(cls: type = JobConfig, prefix: str = "") -> list[str]:
    """Every dotted key with its type, for `skillit-ray config --keys` and error messages."""
    lines = []
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        annotation = hints[item.name]
        if dataclasses.is_dataclass(annotation):
            lines.extend(describe_keys(annotation, prefix + item.name + "."))
        else:
            lines.append(f"{prefix}{item.name}")
    return lines
