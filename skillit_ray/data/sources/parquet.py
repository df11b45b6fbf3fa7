"""A prepared dataset directory as a source (`data.source: parquet`): per-skill parquet part files.

Role in the flow: `skillit-ray prepare` (or any directory in its layout) -> **parquet source** ->
streams (`data/streams.py`) -> assembly. The layout:

    DIR/manifest.json               {"skills": [...], "tokenizer": "tokenizer", ...}
    DIR/train/<skill>/*.parquet     a text column (or prompt and answer columns)
    DIR/val/<skill>/*.parquet       the fixed validation set
    DIR/tokenizer/                  a local tokenizer (`data.tokenizer_path` overrides it)

Every skill's files are checked before Ray starts (present, readable, not empty, with the column).
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skillit_ray.config.job import JobConfig
from skillit_ray.config.loading import choice, require
from skillit_ray.data.ray_datasets import epochs_for_run, text_skill_dataset
from skillit_ray.data.source import SkillSource, ValidationSet, validation_from_items
from skillit_ray.data.streams import ParquetSkillStream, PositionalParquetSkillStream, list_parts
from skillit_ray.data.tokenizer import UNKNOWN_RATE_SAMPLE_ROWS, load_checked_tokenizer
from skillit_ray.data.tokens import token_ids
from skillit_ray.skills.base import Sample

logger = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class ParquetOptions:
    """`data.parquet.*`."""

    path: str = ""
    """The directory written by `skillit-ray prepare` (train/<skill>/, val/<skill>/, manifest.json)."""
    text_column: str = "text"
    """The column of the part files holding the training text (prompt/answer columns are found as they are)."""
    split: str = "files"
    """How rows reach ranks: "files" (each rank reads its own part files: I/O scales with workers, but the
    global batch and a resume depend on the worker count) or "positions" (the skill is one seeded sequence
    of rows and each rank takes its global positions of the step, like the generator streams: runs and
    resumes are identical for any worker count; every rank reads the text column of every part it
    reaches and tokenizes only its own rows)."""
    reader: str = "auto"
    """How a worker reads a skill: "ray_data" (a Ray Data read_parquet + map_batches pipeline per skill:
    reads and tokenizes in other Ray processes), "arrow" (pyarrow in the worker process: no per-skill Ray
    tasks, for hundreds of skills), "auto" (ray_data up to `streams.RAY_DATA_MAX_SKILLS` training skills,
    arrow above; without packing both give the same rows in the same order) or "streaming_split" (one
    read_parquet + map_batches dataset per skill handed to Ray Train, each worker reading its
    `streaming_split`: exact quotas, but rows depend on the worker count and a resume restarts epochs;
    `data/ray_datasets.py`)."""
    shuffle_buffer_rows: int = 1000
    """Rows in each per-skill local shuffle buffer (0 disables shuffling inside a stream); with
    split=positions, the window that rows are permuted within."""

    def __post_init__(self) -> None:
        choice("data.parquet.split", self.split, ("files", "positions"))
        choice("data.parquet.reader", self.reader, ("auto", "ray_data", "arrow", "streaming_split"))
        require(
            self.shuffle_buffer_rows >= 0,
            f"data.parquet.shuffle_buffer_rows={self.shuffle_buffer_rows} must be >= 0",
        )


def read_manifest(dataset_path: str) -> dict[str, Any]:
    """The manifest written by `skillit-ray prepare`; clear error when it is missing or broken."""
    manifest_path = Path(dataset_path) / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ValueError(
            f"data.parquet.path={dataset_path} has no {MANIFEST_FILE}; write the dataset with "
            "`skillit-ray prepare lego|addition --out DIR` or add a manifest listing the skills"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{manifest_path} is not valid JSON ({error}); re-run `skillit-ray prepare`") from error
    if not isinstance(manifest, dict):
        raise ValueError(
            f"{manifest_path} holds a {type(manifest).__name__}, not a mapping: write it as "
            '{"skills": ["skill_a", "skill_b"]} (and the tokenizer directory under "tokenizer")'
        )
    if not isinstance(manifest.get("skills"), list) or not manifest["skills"]:
        raise ValueError(f'{manifest_path} must list the skills under the key \'skills\', e.g. {{"skills": ["a"]}}')
    return manifest


def check_parquet_skill(directory: Path, skill: str, split: str, text_column: str) -> None:
    """Fail before any cluster work when a skill's shards are missing, empty, corrupt or lack the column."""
    import pyarrow.parquet as pq

    parts = list_parts(directory) if directory.is_dir() else []
    if not parts:
        raise ValueError(
            f"skill {skill!r} has no parquet files in {directory}; every skill needs "
            f"{split}/<skill>/part-*.parquet (re-run `skillit-ray prepare` or fix data.parquet.path)"
        )
    total_rows = 0
    for part in parts:
        try:
            metadata = pq.read_metadata(str(part))
        except Exception as error:
            raise ValueError(f"{part} is not a readable parquet file ({error}); rewrite or remove it") from error
        columns = metadata.schema.to_arrow_schema().names
        if text_column not in columns and not {"prompt", "answer"} <= set(columns):
            raise ValueError(
                f"{part} has columns {columns} but no {text_column!r}; set data.parquet.text_column to the text column"
            )
        total_rows += metadata.num_rows
    if total_rows == 0:
        raise ValueError(f"skill {skill!r} has only empty parquet files in {directory}; it needs at least one row")


def samples_from_table(table, skill: str) -> list[Sample]:
    """Prompt/answer(/suffix) rows of a parquet table (as `skillit-ray prepare` writes them) as Samples."""
    columns = set(table.column_names)
    prompts, answers = table.column("prompt").to_pylist(), table.column("answer").to_pylist()
    suffixes = table.column("suffix").to_pylist() if "suffix" in columns else [""] * table.num_rows
    return [
        Sample(skill=skill, prompt=prompt, answer=answer, suffix=suffix)
        for prompt, answer, suffix in zip(prompts, answers, suffixes)
    ]


def with_reader(config: JobConfig, reader: str, replace: tuple[str, ...] = ("auto",)) -> JobConfig:
    """A copy of the config whose parquet source reads with `reader` where its `data.parquet.reader` is one of
    `replace` (an in-process run or a Tune trial reads with pyarrow: one worker gains nothing from Ray Data),
    and whose token store is read by index where `replace` names streaming_split (there is no Ray Train to
    hand out splits); other sources are returned unchanged."""
    if config.data.source == "tokens" and "streaming_split" in replace:
        options = config.data.source_options("tokens")
        if options.get("reader") == "streaming_split":
            config = copy.deepcopy(config)
            config.data.options["tokens"] = {**options, "reader": "index"}
        return config
    options = config.data.source_options("parquet")
    if config.data.source != "parquet" or options.get("reader", "auto") not in replace:
        return config
    config = copy.deepcopy(config)
    config.data.options["parquet"] = {**options, "reader": reader}
    return config


class ParquetDirectorySource(SkillSource):
    """A prepared dataset directory: one parquet directory per skill and split, a manifest, a tokenizer."""

    names = ("parquet",)
    Options = ParquetOptions

    @classmethod
    def check_options(cls, options: ParquetOptions, config: JobConfig) -> None:
        require(
            bool(options.path),
            "data.source=parquet needs data.parquet.path (a directory written by `skillit-ray prepare`)",
        )
        require(
            not (options.split == "positions" and config.data.pack_sequences is True),
            "data.parquet.split=positions addresses one document per row; set data.pack_sequences=false or "
            "use data.parquet.split=files",
        )
        require(
            not (options.split == "positions" and options.reader == "streaming_split"),
            "data.parquet.split=positions reads rows by global position in the worker; data.parquet.reader="
            "streaming_split reads Ray Data splits: choose one (split=files with streaming_split)",
        )

    @classmethod
    def describe(cls, config: JobConfig, options: ParquetOptions) -> dict[str, Any]:
        manifest = read_manifest(options.path)
        return {
            "family": manifest.get("source", "parquet"),
            "all_skills": list(manifest["skills"]),
            "dataset_path": options.path,
            "tokenizer_path": config.data.tokenizer_path
            or str(Path(options.path) / manifest.get("tokenizer", "tokenizer")),
            "generator_options": dict(manifest.get("generator_options") or {}),
        }

    def check(self, config: JobConfig) -> None:
        for split, names in (("train", self.setup.train_skills), ("val", self.setup.eval_skills)):
            for name in names:
                directory = Path(self.setup.dataset_path) / split / name
                check_parquet_skill(directory, name, split, self.options.text_column)

    def packs_text(self) -> bool:
        return self.options.split != "positions"

    def load_tokenizer(self):
        return load_checked_tokenizer(self.setup.tokenizer_path)

    def open_stream(self, skill: str, tokenizer, config: JobConfig, rank: int, world_size: int):
        if self.options.split == "positions":
            return PositionalParquetSkillStream(self.setup, skill, tokenizer, config)
        return ParquetSkillStream(self.setup, skill, tokenizer, config, rank, world_size)

    def ray_dataset(self, skill: str, tokenizer, config: JobConfig):
        if self.options.reader != "streaming_split":
            return None
        import pyarrow.parquet as pq

        parts = [str(part) for part in list_parts(Path(self.setup.dataset_path) / "train" / skill)]
        rows = sum(pq.read_metadata(part).num_rows for part in parts)
        if config.data.pack_sequences:  # packed rows per pass: from a sample's tokens, halved to be safe
            sample = [
                text for text in self.sample_items(skill, UNKNOWN_RATE_SAMPLE_ROWS, config) if isinstance(text, str)
            ]
            tokens_per_document = np.mean([len(ids) + 1 for ids in token_ids(tokenizer, sample)]) if sample else 1.0
            rows = max(1, int(rows * tokens_per_document / config.data.sequence_length / 2))
        options = {"text_column": self.options.text_column, "sequence_length": config.data.sequence_length,
                   "pack": bool(config.data.pack_sequences)}  # fmt: skip
        return text_skill_dataset(parts, tokenizer, options, config.train.seed, epochs_for_run(config, rows))

    def validation_set(self, skill: str, tokenizer, config: JobConfig) -> ValidationSet:
        items = self.validation_items(skill, config)
        return validation_from_items(skill, items, tokenizer, config.data.sequence_length)

    def validation_items(self, skill: str, config: JobConfig) -> list[Sample | str]:
        import pyarrow.parquet as pq

        parts = list_parts(Path(self.setup.dataset_path) / "val" / skill)
        try:
            table = pq.read_table([str(part) for part in parts]) if len(parts) > 1 else pq.read_table(str(parts[0]))
        except Exception as error:
            raise ValueError(
                f"cannot read validation parquet of skill {skill!r} in {parts[0].parent}: {error}"
            ) from error
        table = table.slice(0, config.data.num_val_per_skill)
        columns = set(table.column_names)
        if {"prompt", "answer"} <= columns:
            items = samples_from_table(table, skill)
        elif self.options.text_column in columns:
            items = [str(text) for text in table.column(self.options.text_column).to_pylist()]
        else:
            raise ValueError(
                f"validation parquet of skill {skill!r} has columns {sorted(columns)}; it needs "
                f"data.parquet.text_column={self.options.text_column!r} (or prompt + answer)"
            )
        return items

    def sample_items(self, skill: str, count: int, config: JobConfig) -> list[Sample | str]:
        """Up to `count` first rows of the skill's train part files, in file order."""
        import pyarrow.parquet as pq

        rows: list = []
        for part in list_parts(Path(self.setup.dataset_path) / "train" / skill):
            table = pq.read_table(str(part))
            if {"prompt", "answer"} <= set(table.column_names):
                rows.extend(samples_from_table(table, skill))
            else:
                rows.extend(str(text) for text in table.column(self.options.text_column).to_pylist())
            if len(rows) >= count:
                break
        return rows[:count]

    def pool_reader(self, skill: str, count: int, config: JobConfig) -> Callable[[int], Sample | str]:
        """The first rows of the skill's train part files in file order, held in memory (cycled when short)."""
        rows = self.sample_items(skill, count, config)
        if len(rows) < count:
            logger.info("curriculum pool: skill %s has %d rows for a share of %d; cycling", skill, len(rows), count)
        return lambda index: rows[index % len(rows)]
