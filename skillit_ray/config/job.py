"""Typed configuration for every stage: data -> model -> mixture -> train -> graph/tune.

Role in the flow: the first thing every entry point calls. A run is one YAML file plus
`--set a.b=c` overrides, loaded into `JobConfig` by `load_config` (generic loading in
`typed_config.py`). Unknown keys are errors that list the valid keys. Each section checks its own
values in `validate()`, once; `JobConfig.validate()` adds the checks that span sections. Values
derived from several fields are methods of their section (`GraphConfig.measure_step`,
`MixtureConfig.pool_size`, `MixtureConfig.window_reduction`, `DataConfig.reader_for`). All of it
runs before any Ray work starts, so a typo costs seconds, not a cluster hour.

No Ray import: this module is shared by the driver, the Train workers, Tune trials and tests.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skillit_ray.config.loading import apply_override, build_dataclass, describe_fields, dotted_keys, read_yaml_mapping
from skillit_ray.config.run import LR_SCHEDULES, GraphConfig, RunConfig, ScalingConfig, TuneConfig, choice, require
from skillit_ray.mixture import registry as mixture_strategies

SETTINGS = ("pretraining", "finetuning", "out_of_domain")
GENERATOR_SOURCES = ("lego", "addition", "staircase", "lookup")
DATA_SOURCES = (*GENERATOR_SOURCES, "parquet", "table")
GRAPH_PREPROCESSING = ("none", "paper_binary")
LOSS_REDUCTIONS = ("auto", "sum", "mean")
PRECISIONS = ("auto", "fp32", "bf16")
RAY_DATA_MAX_SKILLS = 32
"""Above this many training skills, `data.parquet_reader=auto` reads parquet with pyarrow in the
worker: hundreds of per-skill Ray Data pipelines per worker spend the machine on task start-up
(200 skills x 2 workers did not finish 30 steps in 15 minutes on 2 cores)."""


def _finite_non_negative(key: str, values: list[float]) -> None:
    for index, value in enumerate(values):
        require(
            math.isfinite(value) and value >= 0,
            f"{key}[{index}]={value!r} must be finite and >= 0; fix the list {values}",
        )
    if values:
        require(sum(values) > 0, f"{key}={values} sums to 0; give at least one positive weight")


@dataclass
class DataConfig:
    """Where the skills come from and how samples become token sequences."""

    source: str = "lego"
    """"lego", "addition", "staircase" or "lookup" (built-in generators), "parquet" (a directory written by `skillit-ray
    prepare`) or "table" (a table with a skill column, read as is: parquet, JSONL, CSV or a datasets
    directory; see `data/table.py`)."""
    path: str = ""
    """Dataset directory written by `skillit-ray prepare` (train/<skill>/, val/<skill>/, manifest.json),
    or the table of source "table". Required for both; for the generators, empty means fresh samples
    are generated on the fly each round (as the paper does) and a path means prepared shards."""
    skill_column: str = "skill"
    """Source "table": the column that names each row's skill."""
    prompt_column: str = ""
    """Source "table": prompt column of prompt/answer rows (with `answer_column`); empty: `text_column`."""
    answer_column: str = ""
    """Source "table": answer column of prompt/answer rows; validation scores the answer tokens."""
    split_seed: int = 0
    """Source "table": seeds which rows of each skill are held out for validation (not train.seed, so
    runs with different training seeds evaluate on the same rows)."""
    train_skills: list[str] = field(default_factory=list)
    """Ordered training skills (rows of the skills graph). Empty means every skill of the source."""
    eval_skills: list[str] = field(default_factory=list)
    """Ordered evaluation skills (columns of the graph). Empty means the training skills
    (continual pre-training) or `mixture.target_skills` (fine-tuning)."""
    text_column: str = "text"
    """Parquet column holding the training text."""
    sequence_length: int = 0
    """Tokens per training sequence (rows are padded or truncated to it). 0: chosen from the data and
    stated in the log (`data/resolve.py`): the longest sampled row, or for packed text the median
    document length rounded up to a power of two in 64..512."""
    pack_sequences: bool | None = None
    """Concatenate documents (EOS-separated) into full rows instead of padding each one. Unset: on for
    plain text, off for prompt/answer and synthetic samples."""
    num_val_per_skill: int = 100
    """Held-out validation samples per evaluation skill (official code: 100)."""
    lego_num_variables: int = 5
    """LEGO chain length k; also the number of LEGO skills, and of lookup skills (chain length there)."""
    lookup_num_chains: int = 2
    """Lookup chains (`skills/lookup.py`, LEGO without negation, a pre-training corpus): chains per sentence."""
    addition_num_digits: int = 3
    """Digits per addition operand; also the number of addition skills."""
    staircase_num_skills: int = 4
    """Staircase chain (`skills/staircase.py`): skills; skill i asks for the i-th variable of the chain."""
    staircase_chain_length: int = 12
    """Staircase chain: variables per sentence (those after the asked ones are distractors)."""
    staircase_negation_probability: float = 0.25
    """Staircase chain: probability that an asked variable's modifier negates its parent (<= 0.5)."""
    shuffle_buffer_rows: int = 1000
    """Rows in each per-skill local shuffle buffer (0 disables shuffling inside a stream)."""
    parquet_split: str = "files"
    """How parquet rows reach ranks: "files" (each rank reads its own part files: I/O scales with
    workers, but the global batch and a resume depend on the worker count) or "positions" (the skill
    is one seeded sequence of rows and each rank takes its global positions of the step, like the
    generator streams: runs and resumes are identical for any worker count; every rank reads the
    text column of every part it reaches and tokenizes only its own rows)."""
    prefetch_batches: bool = True
    """Assemble the next step's batch on a background thread while this step trains (never across a
    round start, an evaluation or a checkpoint): the same rows in the same order as with false, which
    assembles every batch in line."""
    parquet_reader: str = "auto"
    """How a worker reads a parquet skill: "ray_data" (a Ray Data read_parquet + map_batches pipeline
    per skill: reads and tokenizes in other Ray processes), "arrow" (pyarrow in the worker process:
    no per-skill Ray tasks, for hundreds of skills) or "auto" (ray_data up to
    `config.RAY_DATA_MAX_SKILLS` training skills, arrow above). Without packing both give the same rows
    in the same order."""
    tokenizer_path: str = ""
    """Local tokenizer directory for parquet sources; empty uses the one written by `prepare`."""
    max_unknown_token_rate: float = 0.02
    """Refuse a tokenizer that maps more than this share of a skill's sampled tokens to <unk>."""

    def validate(self) -> None:
        choice("data.source", self.source, DATA_SOURCES)
        if self.source == "parquet":
            require(
                bool(self.path), "data.source=parquet needs data.path (a directory written by `skillit-ray prepare`)"
            )
        if self.source == "table":
            require(bool(self.path), "data.source=table needs data.path (a parquet/JSONL/CSV table or datasets dir)")
        require(
            self.sequence_length == 0 or self.sequence_length >= 8,
            f"data.sequence_length={self.sequence_length} must be >= 8 (or 0: chosen from the data)",
        )
        require(
            bool(self.prompt_column) == bool(self.answer_column),
            f"data.prompt_column={self.prompt_column!r} and data.answer_column={self.answer_column!r}: give both "
            "or neither",
        )
        require(
            0.0 <= self.max_unknown_token_rate <= 1.0,
            f"data.max_unknown_token_rate={self.max_unknown_token_rate} must be in [0, 1]",
        )
        require(self.num_val_per_skill >= 1, f"data.num_val_per_skill={self.num_val_per_skill} must be >= 1")
        require(
            1 <= self.lego_num_variables <= 26,
            f"data.lego_num_variables={self.lego_num_variables} must be in 1..26 (one letter per variable)",
        )
        require(
            self.source != "lookup" or 2 <= self.lookup_num_chains <= 26 // self.lego_num_variables,
            f"data.lookup_num_chains={self.lookup_num_chains} must be >= 2 with lookup_num_chains * "
            f"lego_num_variables <= 26 (one letter per variable)",
        )
        require(self.addition_num_digits >= 1, f"data.addition_num_digits={self.addition_num_digits} must be >= 1")
        require(
            1 <= self.staircase_num_skills <= self.staircase_chain_length <= 26,
            f"data.staircase_num_skills={self.staircase_num_skills} <= data.staircase_chain_length="
            f"{self.staircase_chain_length} <= 26 must hold",
        )
        require(
            0 < self.staircase_negation_probability <= 0.5,
            f"data.staircase_negation_probability={self.staircase_negation_probability} must be in (0, 0.5]",
        )
        require(self.shuffle_buffer_rows >= 0, f"data.shuffle_buffer_rows={self.shuffle_buffer_rows} must be >= 0")
        require(
            self.parquet_split in ("files", "positions"),
            f"data.parquet_split={self.parquet_split!r} must be files or positions",
        )
        require(
            not (self.parquet_split == "positions" and self.pack_sequences is True),
            "data.parquet_split=positions addresses one document per row; set data.pack_sequences=false or "
            "use data.parquet_split=files",
        )
        require(
            self.parquet_reader in ("auto", "ray_data", "arrow"),
            f"data.parquet_reader={self.parquet_reader!r} must be one of auto, ray_data, arrow",
        )
        for key, names in (("data.train_skills", self.train_skills), ("data.eval_skills", self.eval_skills)):
            require(len(set(names)) == len(names), f"{key}={names} lists a skill twice; list each skill once")

    def reader_for(self, num_train_skills: int) -> str:
        """The parquet reader a worker uses: `parquet_reader`, with "auto" resolved by the skill count."""
        if self.parquet_reader != "auto":
            return self.parquet_reader
        return "ray_data" if num_train_skills <= RAY_DATA_MAX_SKILLS else "arrow"


@dataclass
class ModelConfig:
    """The causal LM, built from a transformers config (no hub download)."""

    size: str = "tiny"
    """Named size from `skillit_ray.model.MODEL_SIZES` ("tiny", "small", "gpt2-124m", "gpt-neo-125m", ...)."""
    pretrained_path: str = ""
    """Local directory of a saved transformers model to start from (continual pre-training)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Extra transformers-config fields, e.g. {n_layer: 3}; {model_type: llama} builds the named size's
    shape (layers, heads, width) as another architecture (`skillit_ray.model.ARCHITECTURES`)."""

    def validate(self) -> None:
        require(bool(self.size), "model.size must name a size from skillit_ray.model.MODEL_SIZES")
        require(
            not (self.pretrained_path and self.overrides),
            f"model.overrides={self.overrides} cannot apply to model.pretrained_path={self.pretrained_path!r}: the "
            "pretrained model's own config.json wins; remove model.overrides or model.pretrained_path",
        )


@dataclass
class MixtureConfig:
    """Which data-selection strategy runs and its Skill-it hyperparameters."""

    strategy: str = "skillit"
    """One of `skillit_ray.mixture.STRATEGIES`: skillit, static, no_graph, stratified, random,
    target_only, skill_curriculum, skill_anticurriculum, curriculum, anticurriculum."""
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
    uniform_mix: float = 0.0
    """Collapse guard for skillit/static/no_graph/aioli, a deviation from the paper (0: off, the paper):
    p = (1 - uniform_mix) p + uniform_mix / k, so every skill keeps at least uniform_mix / k of the data."""
    aioli_rounds_per_update: int = mixture_strategies.AioliMixture.rounds_per_update
    """Aioli: rounds (its sub-rounds) per update; the first k x aioli_probe_sweeps of them are probes."""
    aioli_probe_sweeps: int = mixture_strategies.AioliMixture.probe_sweeps
    """Aioli (lp_rounds): probe sweeps over the k skills per update."""
    aioli_one_hot_factor: float = mixture_strategies.AioliMixture.one_hot_factor
    """Aioli: the probed skill's share in a probe mixture (1: one-hot)."""
    aioli_ema: float = mixture_strategies.AioliMixture.ema
    """Aioli: weight of the previous interaction matrix in its moving average (0: the latest only)."""

    def validate(self) -> None:
        choice("mixture.strategy", self.strategy, list(mixture_strategies.STRATEGIES))
        choice("mixture.setting", self.setting, SETTINGS)
        choice("mixture.graph_preprocessing", self.graph_preprocessing, GRAPH_PREPROCESSING)
        choice("mixture.loss_reduction", self.loss_reduction, LOSS_REDUCTIONS)
        require(
            math.isfinite(self.eta) and self.eta > 0,
            f"mixture.eta={self.eta} must be a finite number > 0 (official values 0.1-0.8)",
        )
        require(self.window >= 1, f"mixture.window={self.window} must be >= 1 (evaluations per update)")
        require(self.num_rounds >= 1, f"mixture.num_rounds={self.num_rounds} must be >= 1")
        require(0.0 <= self.mixing_fraction < 1.0, f"mixture.mixing_fraction={self.mixing_fraction} must be in [0, 1)")
        require(self.curriculum_num_epochs >= 1, "mixture.curriculum_num_epochs must be >= 1")
        require(self.curriculum_pool_size >= 0, "mixture.curriculum_pool_size must be >= 0")
        require(0.0 <= self.uniform_mix <= 1.0, f"mixture.uniform_mix={self.uniform_mix} must be in [0, 1] (0 = off)")
        require(0.0 <= self.aioli_ema < 1.0, f"mixture.aioli_ema={self.aioli_ema} must be in [0, 1)")
        self._validate_graph()
        _finite_non_negative("mixture.proportions", self.proportions)
        _finite_non_negative("mixture.prior", self.prior)
        for weight in self.prior:
            require(weight > 0, f"mixture.prior={self.prior} must be > 0 everywhere (it multiplies exp(...))")
        if mixture_strategies.STRATEGIES[self.strategy].needs_proportions:
            require(
                bool(self.proportions),
                f"mixture.strategy={self.strategy} needs mixture.proportions, e.g. [1, 1, 1, 3, 5] for LEGO",
            )

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
        return mixture_strategies.window_reduction(self.setting, self.loss_reduction)

    def pool_size(self, train: TrainConfig) -> int:
        """Samples in the sample-level curriculum's pool (default: every sample the run trains on)."""
        return self.curriculum_pool_size or train.steps * train.batch_size


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
    """auto (bf16 autocast on GPU, fp32 on CPU), fp32, or bf16 (autocast on GPU and CPU: 1.5x faster for the
    tiny model on a CPU with AVX512-BF16, slower on CPUs without it; weights and losses stay fp32)."""
    compile: bool = False
    """torch.compile the model (GPU runs)."""
    log_every_n_steps: int = 10
    """Training-loss log cadence."""

    def validate(self) -> None:
        require(self.steps >= 1, f"train.steps={self.steps} must be >= 1")
        require(self.batch_size >= 1, f"train.batch_size={self.batch_size} must be >= 1")
        require(self.micro_batch_size >= 0, f"train.micro_batch_size={self.micro_batch_size} must be >= 0")
        require(
            math.isfinite(self.learning_rate) and self.learning_rate > 0,
            f"train.learning_rate={self.learning_rate} must be > 0",
        )
        require(self.warmup_steps >= 0, f"train.warmup_steps={self.warmup_steps} must be >= 0")
        choice("train.lr_schedule", self.lr_schedule, LR_SCHEDULES)
        choice("train.precision", self.precision, PRECISIONS)
        require(self.eval_every_n_steps >= 1, f"train.eval_every_n_steps={self.eval_every_n_steps} must be >= 1")
        require(self.checkpoint_every_n_steps >= 0, "train.checkpoint_every_n_steps must be >= 0 (0: round ends)")
        require(self.grad_clip_norm >= 0, f"train.grad_clip_norm={self.grad_clip_norm} must be >= 0")
        require(self.log_every_n_steps >= 1, "train.log_every_n_steps must be >= 1")
        require(0 <= self.seed < 2**32, f"train.seed={self.seed} must be in 0..2**32-1 (numpy and torch seeds)")

    def autocast_bf16(self, device_type: str) -> bool:
        """Whether forward passes run under bf16 autocast on this device type."""
        return self.precision == "bf16" or (self.precision == "auto" and device_type == "cuda")

    def steps_in_round(self, round_index: int, num_rounds: int) -> tuple[int, int]:
        """[start, end) steps of a round: round r covers steps r*S//T .. (r+1)*S//T.

        When steps is not divisible by rounds the rounds differ by at most one step.
        """
        return (round_index * self.steps // num_rounds, (round_index + 1) * self.steps // num_rounds)

    def round_of_step(self, step: int, num_rounds: int) -> int:
        """The round a step belongs to (inverse of `steps_in_round`)."""
        return ((step + 1) * num_rounds - 1) // self.steps


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
        """Every section's own checks, then those spanning sections; raises ValueError naming key and fix."""
        for section in (self.data, self.model, self.mixture, self.train, self.scaling, self.run, self.graph):
            section.validate()
        self.tune.validate()
        mixture, train = self.mixture, self.train
        if mixture.setting == "finetuning":
            require(
                bool(mixture.target_skills) or bool(self.data.eval_skills),
                "mixture.setting=finetuning needs mixture.target_skills (the skill(s) to learn)",
            )
        if mixture.setting == "out_of_domain":
            require(
                bool(self.data.eval_skills),
                "mixture.setting=out_of_domain needs data.eval_skills (evaluation skills separate from training)",
            )
        require(
            mixture.num_rounds <= train.steps,
            f"mixture.num_rounds={mixture.num_rounds} exceeds train.steps={train.steps}; a round needs >= 1 step",
        )
        require(
            train.batch_size >= self.scaling.num_workers,
            f"train.batch_size={train.batch_size} is smaller than scaling.num_workers={self.scaling.num_workers}; "
            "every worker needs at least one sample per step",
        )
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON friendly)."""
        return dataclasses.asdict(self)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> JobConfig:
    """Load a YAML file (optional) and apply `a.b=c` overrides, then validate.

    Args:
        path: YAML file whose top-level keys are sections of JobConfig; None for defaults.
        overrides: strings "section.key=value"; the value is parsed as YAML ("1e-3", "[1, 2]").

    Raises:
        ValueError: missing or invalid file (file and line named), unknown section or key (valid keys
            listed), wrong type, malformed override, or an invalid value.
    """
    raw = read_yaml_mapping(path) if path is not None else {}
    for override in overrides or []:
        apply_override(raw, override)
    return with_absolute_local_paths(config_from_dict(raw).validate())


INPUT_PATH_KEYS = (
    ("data", "path"),
    ("data", "tokenizer_path"),
    ("mixture", "graph_path"),
    ("model", "pretrained_path"),
)
"""Keys naming files or directories a run reads (`preflight` checks that local ones exist)."""
LOCAL_PATH_KEYS = (*INPUT_PATH_KEYS, ("run", "storage_path"), ("graph", "output_path"))
"""Every key holding a file or directory: relative local paths are made absolute when the config loads."""


def is_local_path(value: str) -> bool:
    """A non-empty path on this machine's disk: not a URI (s3://, gs://, file://) or an `hf:` dataset name."""
    return bool(value) and "://" not in value and not value.startswith("hf:")


def path_values(config: JobConfig, keys=LOCAL_PATH_KEYS) -> list[tuple[str, str]]:
    """("section.key", value) of every local path among `keys`."""
    values = [(f"{section}.{key}", getattr(getattr(config, section), key)) for section, key in keys]
    return [(name, value) for name, value in values if is_local_path(value)]


def with_absolute_local_paths(config: JobConfig) -> JobConfig:
    """Relative local paths resolved against the working directory where the config is loaded (the
    driver's), so Ray Train workers and Tune trials, which run elsewhere, find the same files. URIs
    (s3://, gs://, file://) and `hf:` dataset names are left as they are."""
    for name, value in path_values(config):
        section, key = name.split(".")
        setattr(getattr(config, section), key, os.path.abspath(os.path.expanduser(value)))
    return config


def config_from_dict(raw: dict[str, Any]) -> JobConfig:
    """Build a JobConfig from a nested dict, rejecting unknown keys and wrong types."""
    return build_dataclass(JobConfig, raw)


def describe_keys() -> list[str]:
    """Every dotted key, for error messages and tests."""
    return dotted_keys(JobConfig)


def describe_keys_with_docs() -> str:
    """Every dotted key with its type, default and docstring, for `skillit-ray keys`."""
    lines = []
    for key, type_name, default, docstring in describe_fields(JobConfig):
        lines.append(f"{key} ({type_name}, default {default!r})")
        if docstring:
            lines.append(f"    {docstring}")
    return "\n".join(lines)
