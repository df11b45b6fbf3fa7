"""A table with a skill column as a source (`data.source: table`): trained on as is, no prepare step.

Role in the flow: the user's table (`data/table.py` reads it) -> **table source** -> assembly. Every
worker reads the skill and text columns into memory (Arrow, compact), holds out
`data.num_val_per_skill` rows of every skill by a seeded choice (`data.table.split_seed`, so runs with
different training seeds evaluate on the same rows), and serves a skill's remaining rows as one
sequence addressed by global position, in a seeded order per epoch, so runs do not depend on the
worker count. Tables larger than memory: `skillit-ray prepare table`, then `data.source: parquet`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa

from skillit_ray.config.job import JobConfig
from skillit_ray.config.loading import require
from skillit_ray.data.source import SkillSource, ValidationSet, validation_from_items
from skillit_ray.data.table import TABLE_BATCH_ROWS, check_columns, open_table, skill_values
from skillit_ray.data.tokenizer import load_checked_tokenizer
from skillit_ray.data.tokens import encode_texts
from skillit_ray.skills.base import Sample

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableSourceOptions:
    """`data.table.*`."""

    path: str = ""
    """The table: parquet (a file, a directory or a glob), JSONL, CSV, a `datasets` directory, or hf:NAME."""
    skill_column: str = "skill"
    """The column that names each row's skill."""
    text_column: str = "text"
    """The column holding the training text."""
    prompt_column: str = ""
    """Prompt column of prompt/answer rows (with `answer_column`); empty: `text_column`."""
    answer_column: str = ""
    """Answer column of prompt/answer rows; validation scores the answer tokens."""
    split_seed: int = 0
    """Seeds which rows of each skill are held out for validation (not train.seed, so runs with different
    training seeds evaluate on the same rows)."""

    def __post_init__(self) -> None:
        require(
            bool(self.prompt_column) == bool(self.answer_column),
            f"data.table.prompt_column={self.prompt_column!r} and data.table.answer_column={self.answer_column!r}: "
            "give both or neither",
        )

    def text_columns(self) -> list[str]:
        return [self.prompt_column, self.answer_column] if self.prompt_column else [self.text_column]


@dataclass
class SkillTable:
    """A table in memory: per skill, its training and held-out row numbers, and the text columns."""

    columns: dict[str, pa.ChunkedArray]
    train_rows: dict[str, np.ndarray]
    val_rows: dict[str, np.ndarray]


@lru_cache(maxsize=2)
def load_skill_table(path: str, skill_column: str, text_columns: tuple[str, ...], num_val: int, seed: int):
    """Read a table's skill and text columns and split each skill's rows (cached per process)."""
    reader = open_table(path)
    check_columns(reader, skill_column, list(text_columns))
    skills, texts = [], {column: [] for column in text_columns}
    for batch in reader.batches([skill_column, *text_columns], TABLE_BATCH_ROWS):
        skills.extend(skill_values(batch, skill_column, reader.description, len(skills)))
        for column in text_columns:
            texts[column].append(batch.column(batch.schema.get_field_index(column)))
    skill_array = np.asarray(skills, dtype=object)
    train_rows, val_rows = {}, {}
    for skill in sorted(set(skills)):
        rows = np.flatnonzero(skill_array == skill)
        if rows.size <= num_val:
            raise ValueError(
                f"skill {skill!r} has {rows.size} rows in {reader.description}, not more than "
                f"data.num_val_per_skill={num_val}: no row would be left to train on; lower data.num_val_per_skill "
                "or drop the skill"
            )
        held_out = np.sort(np.random.default_rng([seed, _stable_hash(skill)]).choice(rows.size, num_val, replace=False))
        val_rows[skill] = rows[held_out]
        train_rows[skill] = np.delete(rows, held_out)
    columns = {column: pa.chunked_array(chunks, type=pa.string()) for column, chunks in texts.items()}
    return SkillTable(columns, train_rows, val_rows)


def _stable_hash(name: str) -> int:
    return int.from_bytes(name.encode()[:8].ljust(8, b"\0"), "little") ^ len(name)


def skill_table(options: TableSourceOptions, num_val_per_skill: int) -> SkillTable:
    """The table of `data.table.path`, read once per process and split by skill."""
    return load_skill_table(options.path, options.skill_column, tuple(options.text_columns()), num_val_per_skill,
                            options.split_seed)  # fmt: skip


def table_items(table: SkillTable, options: TableSourceOptions, skill: str, rows: np.ndarray) -> list[Sample | str]:
    """Samples (prompt/answer tables) or texts of these table rows."""
    if options.prompt_column:
        prompts = table.columns[options.prompt_column].take(pa.array(rows)).to_pylist()
        answers = table.columns[options.answer_column].take(pa.array(rows)).to_pylist()
        return [Sample(skill=skill, prompt=prompt, answer=answer) for prompt, answer in zip(prompts, answers)]
    return table.columns[options.text_column].take(pa.array(rows)).to_pylist()


class TableSkillStream:
    """A skill's training rows of a table as one sequence of token rows addressed by global position.

    Epoch e is the skill's rows in a seeded order (seed, epoch, skill); without packing, token row g
    is document g of the concatenated epochs; with packing, the epoch's documents are joined with EOS
    and cut into rows. Every rank generates the same sequence and keeps only the rows it takes, so
    any worker count trains the same rows. Positions only grow, so rows before the last taken one
    are dropped.
    """

    DOCUMENTS_PER_CHUNK = 256

    def __init__(self, source: TableSource, skill: str, tokenizer, config: JobConfig) -> None:
        self.skill, self.tokenizer, self.config, self.source = skill, tokenizer, config, source
        self.rows = source.table(config).train_rows[skill]
        self._chunks = self._token_chunks()
        self._buffer = np.zeros((0, config.data.sequence_length), dtype=np.int32)
        self._buffer_start = 0  # global row number of self._buffer[0]

    def _token_chunks(self) -> Iterator[np.ndarray]:
        data = self.config.data
        for epoch in itertools.count():
            if epoch > 0:
                logger.info("skill %s: starting epoch %d (%d documents per epoch)", self.skill, epoch, self.rows.size)
            generator = np.random.default_rng([self.config.train.seed, epoch, _stable_hash(self.skill), 0x7AB1E])
            order = self.rows[generator.permutation(self.rows.size)]
            for start in range(0, order.size, self.DOCUMENTS_PER_CHUNK):
                items = self.source.items(self.config, self.skill, order[start : start + self.DOCUMENTS_PER_CHUNK])
                texts = [item.text if isinstance(item, Sample) else item for item in items]
                yield encode_texts(self.tokenizer, texts, data.sequence_length, pack=bool(data.pack_sequences))

    def take(self, count: int, first_global_index: int) -> np.ndarray:
        assert first_global_index >= self._buffer_start, "a skill's positions only grow"
        while self._buffer_start + len(self._buffer) < first_global_index + count:
            self._buffer = np.concatenate([self._buffer, next(self._chunks)])
        offset = first_global_index - self._buffer_start
        rows = self._buffer[offset : offset + count]
        self._buffer, self._buffer_start = self._buffer[offset + count :], first_global_index + count
        return rows

    def state_dict(self) -> dict[str, Any]:
        return {}  # positions are global and kept by the assembler

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class TableSource(SkillSource):
    """Train straight from a table with a skill column (`data.source: table`, `data.table.*`)."""

    names = ("table",)
    Options = TableSourceOptions

    @classmethod
    def check_options(cls, options: TableSourceOptions, config: JobConfig) -> None:
        require(
            bool(options.path), "data.source=table needs data.table.path (a parquet/JSONL/CSV table or datasets dir)"
        )
        require(
            bool(config.data.tokenizer_path),
            "data.source=table needs data.tokenizer_path: train one on the table with `skillit-ray prepare table "
            "--input ... --tokenizer-vocab-size 4096 --out DIR` (then use DIR/tokenizer) or give your own",
        )

    @classmethod
    def describe(cls, config: JobConfig, options: TableSourceOptions) -> dict[str, Any]:
        table = skill_table(options, config.data.num_val_per_skill)
        return {
            "family": "table",
            "all_skills": sorted(table.train_rows),
            "dataset_path": options.path,
            "tokenizer_path": config.data.tokenizer_path,
        }

    def table(self, config: JobConfig) -> SkillTable:
        return skill_table(self.options, config.data.num_val_per_skill)

    def items(self, config: JobConfig, skill: str, rows: np.ndarray) -> list[Sample | str]:
        return table_items(self.table(config), self.options, skill, rows)

    def check(self, config: JobConfig) -> None:
        pass  # describe() read the whole table: columns, types, skills and split sizes are checked there

    def load_tokenizer(self):
        return load_checked_tokenizer(self.setup.tokenizer_path)

    def open_stream(self, skill: str, tokenizer, config: JobConfig, rank: int, world_size: int):
        return TableSkillStream(self, skill, tokenizer, config)

    def validation_set(self, skill: str, tokenizer, config: JobConfig) -> ValidationSet:
        items = self.validation_items(skill, config)
        return validation_from_items(skill, items, tokenizer, config.data.sequence_length)

    def validation_items(self, skill: str, config: JobConfig) -> list[Sample | str]:
        return self.items(config, skill, self.table(config).val_rows[skill])

    def pool_reader(self, skill: str, count: int, config: JobConfig) -> Callable[[int], Sample | str]:
        rows = self.table(config).train_rows[skill]
        return lambda index: self.items(config, skill, rows[[index % rows.size]])[0]
