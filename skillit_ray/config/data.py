"""The `data` section: which source, which skills, and how samples become token sequences.

Role in the flow: config -> **data section** -> data (the source named here reads it). The keys every
source shares live here; a source's own options sit under its name (`data.parquet.path`,
`data.table.skill_column`, `data.lego.num_variables`, ...) and are typed and checked by the source
itself (`skillit_ray/data/sources/`), so adding a source changes nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from skillit_ray.config.loading import require

_PARQUET_OR_TABLE = "data.parquet.{key} (data.source=parquet) or data.table.{key} (data.source=table)"


@dataclass
class DataConfig:
    """Where the skills come from and how samples become token sequences."""

    OPTION_SECTIONS: ClassVar[str] = "options"
    MOVED_KEYS: ClassVar[dict[str, str]] = {
        "path": _PARQUET_OR_TABLE.format(key="path"),
        "text_column": _PARQUET_OR_TABLE.format(key="text_column"),
        "skill_column": "data.table.skill_column",
        "prompt_column": "data.table.prompt_column",
        "answer_column": "data.table.answer_column",
        "split_seed": "data.table.split_seed",
        "parquet_split": "data.parquet.split",
        "parquet_reader": "data.parquet.reader",
        "shuffle_buffer_rows": "data.parquet.shuffle_buffer_rows",
        "lego_num_variables": "data.lego.num_variables (or data.lookup.num_variables)",
        "lookup_num_chains": "data.lookup.num_chains",
        "addition_num_digits": "data.addition.num_digits",
        "staircase_num_skills": "data.staircase.num_skills",
        "staircase_chain_length": "data.staircase.chain_length",
        "staircase_negation_probability": "data.staircase.negation_probability",
    }
    """Keys of the flat layout before per-source options: a YAML that still has one is told the new key."""

    source: str = "lego"
    """Where the skills come from: a built-in generator ("lego", "addition", "staircase", "lookup": fresh
    samples every round, as the paper does), "parquet" (a directory written by `skillit-ray prepare`) or
    "table" (a table with a skill column, read as is). Its options go under `data.<source>.*`;
    `skillit-ray keys` lists them."""
    train_skills: list[str] = field(default_factory=list)
    """Ordered training skills (rows of the skills graph). Empty means every skill of the source."""
    eval_skills: list[str] = field(default_factory=list)
    """Ordered evaluation skills (columns of the graph). Empty means the training skills
    (continual pre-training) or `mixture.target_skills` (fine-tuning)."""
    sequence_length: int = 0
    """Tokens per training sequence (rows are padded or truncated to it). 0: chosen from the data and
    stated in the log: the longest sampled row, or for packed text the median document length rounded
    up to a power of two in 64..512."""
    pack_sequences: bool | None = None
    """Concatenate documents (EOS-separated) into full rows instead of padding each one. Unset: on for
    plain text, off for prompt/answer and synthetic samples."""
    num_val_per_skill: int = 100
    """Held-out validation samples per evaluation skill (official code: 100)."""
    prefetch_batches: bool = True
    """Assemble the next step's batch on a background thread while this step trains (never across a
    round start, an evaluation or a checkpoint): the same rows in the same order as with false, which
    assembles every batch in line."""
    tokenizer_path: str = ""
    """Local tokenizer directory; empty uses the source's own (a prepared directory's, or one built
    from a generator's vocabulary). Required for data.source=table."""
    max_unknown_token_rate: float = 0.02
    """Refuse a tokenizer that maps more than this share of a skill's sampled tokens to <unk>."""
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-source options by source name (`data.parquet.*`, ...), typed by the source."""

    def validate(self) -> None:
        require(bool(self.source), "data.source must name a source; `skillit-ray keys` lists them")
        require(
            self.sequence_length == 0 or self.sequence_length >= 8,
            f"data.sequence_length={self.sequence_length} must be >= 8 (or 0: chosen from the data)",
        )
        require(
            0.0 <= self.max_unknown_token_rate <= 1.0,
            f"data.max_unknown_token_rate={self.max_unknown_token_rate} must be in [0, 1]",
        )
        require(self.num_val_per_skill >= 1, f"data.num_val_per_skill={self.num_val_per_skill} must be >= 1")
        for key, names in (("data.train_skills", self.train_skills), ("data.eval_skills", self.eval_skills)):
            require(len(set(names)) == len(names), f"{key}={names} lists a skill twice; list each skill once")

    def source_options(self, name: str | None = None) -> dict[str, Any]:
        """The untyped options of a source (default: the configured one), as given."""
        return dict(self.options.get(name or self.source, {}))
