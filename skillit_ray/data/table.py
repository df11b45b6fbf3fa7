"""Tables with a skill column: reading them in batches, and training straight from one (`data.source=table`).

Role in the flow: the user's table -> **table** -> `prepare.prepare_table` (streamed into per-skill
shards) or `TableSource` (read as is). A table is parquet (a file, a directory or a glob), JSON
lines, CSV, or a Hugging Face `datasets` dataset (a `save_to_disk` directory; `hf:NAME` loads by
name where the machine reaches the hub). `open_table` reads it in fixed-size Arrow batches of the
columns asked for, in a deterministic order (sorted file names), never whole into memory.

`TableSource` trains without a prepare step: every worker reads the skill and text columns into
memory (Arrow, compact), holds out `data.num_val_per_skill` rows of every skill by a seeded choice
(`data.split_seed`, so runs with different training seeds evaluate on the same rows), and serves a
skill's remaining rows as one sequence addressed by global position, in a seeded order per epoch,
so runs do not depend on the worker count. Tables larger than memory: `skillit-ray prepare table`.
"""

from __future__ import annotations

import glob
import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from skillit_ray.data.source import SkillSetup, SkillSource, ValidationSet, validation_from_items
from skillit_ray.data.tokenizer import load_checked_tokenizer
from skillit_ray.data.tokens import encode_texts
from skillit_ray.skills.base import Sample

if TYPE_CHECKING:
    from skillit_ray.config.job import JobConfig

logger = logging.getLogger(__name__)

TABLE_BATCH_ROWS = 8192
"""Rows per Arrow batch when a table is streamed."""


@dataclass
class TableReader:
    """A table opened for batched reading: its schema, a description for messages, and the batches."""

    description: str
    schema: pa.Schema
    batches: Callable[[list[str], int], Iterator[pa.RecordBatch]]


def open_table(path: str) -> TableReader:
    """Open parquet (file, directory, glob), JSON lines, CSV or a `datasets` dataset for batched reading.

    Raises:
        ValueError: The path matches nothing, the format is not one of these, or the dataset cannot be loaded.
    """
    if path.startswith("hf:"):
        return _hub_dataset(path[3:])
    local = Path(path)
    if local.is_dir() and (local / "dataset_dict.json").is_file():
        splits = sorted(item.name for item in local.iterdir() if item.is_dir())
        raise ValueError(f"{path} is a datasets DatasetDict with splits {splits}; pass one split, e.g. {path}/train")
    if local.is_dir() and (local / "state.json").is_file():
        return _saved_dataset(path)
    files = sorted(glob.glob(path)) if any(char in path for char in "*?[") else [path]
    if local.is_dir():
        files = sorted(str(item) for item in local.rglob("*") if item.is_file() and _table_format(str(item)))
    files = [name for name in files if Path(name).is_file()]
    if not files:
        raise ValueError(f"--input {path} matches no file; give a parquet/JSONL/CSV file, a directory or a glob")
    formats = {_table_format(name) for name in files}
    if None in formats or len(formats) != 1:
        raise ValueError(
            f"--input {path}: files must all be one of parquet, jsonl/json or csv (found {sorted(map(str, formats))})"
        )
    return _file_dataset(files, formats.pop())


def _table_format(name: str) -> str | None:
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return {"parquet": "parquet", "jsonl": "json", "json": "json", "csv": "csv"}.get(suffix)


def _file_dataset(files: list[str], file_format: str) -> TableReader:
    import pyarrow.dataset as ds

    try:
        dataset = ds.dataset(files, format=file_format)
        schema = dataset.schema
    except (pa.ArrowInvalid, OSError) as error:
        raise ValueError(f"cannot read {files[0]} as {file_format} ({error}); check the file") from None

    def batches(columns: list[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
        yield from dataset.to_batches(columns=columns, batch_size=batch_rows)

    return TableReader(f"{len(files)} {file_format} file(s) ({files[0]} ...)", schema, batches)


def _saved_dataset(path: str) -> TableReader:
    import datasets

    dataset = datasets.load_from_disk(path)

    def batches(columns: list[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
        for table in dataset.select_columns(columns).with_format("arrow").iter(batch_size=batch_rows):
            yield from table.to_batches()

    return TableReader(f"datasets directory {path}", dataset.data.schema, batches)


def _hub_dataset(name: str) -> TableReader:
    import datasets

    try:
        dataset = datasets.load_dataset(name, split="train", streaming=True)
        schema = dataset.features.arrow_schema
    except Exception as error:  # offline, unknown name, gated: all surface differently
        raise ValueError(
            f"cannot load hf:{name} from the Hugging Face hub ({type(error).__name__}: {error}); on a machine that "
            "reaches the hub run datasets.load_dataset(...).save_to_disk(DIR) and pass DIR"
        ) from None

    def batches(columns: list[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
        for batch in dataset.select_columns(columns).iter(batch_size=batch_rows):
            yield pa.RecordBatch.from_pydict(batch)

    return TableReader(f"hf:{name}", schema, batches)


def require_columns(reader: TableReader, columns: dict[str, str], text_settings: tuple[str, ...] = ()) -> None:
    """Every column a setting names (setting -> column) exists, and those of `text_settings` hold strings.

    The one column check of the system: `prepare table`, training from a table and `discover` call it
    with their own flag names, so every error names the column, the setting that chose it, the
    columns the table has and the fix."""
    names = reader.schema.names
    for setting, column in columns.items():
        if column not in names:
            role = setting.split()[0].lstrip("-").removesuffix("-column").replace("-", " ")  # "--true-skill-column"
            raise ValueError(
                f"{reader.description} has no {role} column {column!r}; its columns are {names}: "
                f"set {setting} to one of them"
            )
    for setting in text_settings:
        kind = reader.schema.field(columns[setting]).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise ValueError(
                f"{reader.description}: column {columns[setting]!r} holds {kind}, not text ({setting}); "
                "choose a string column or convert it to strings first"
            )


def check_columns(reader: TableReader, skill_column: str, text_columns: list[str]) -> None:
    """The skill column and the text column (or the prompt and answer columns) exist and hold strings."""
    roles = ["text"] if len(text_columns) == 1 else ["prompt", "answer"]
    text = {f"--{role}-column (data.{role}_column)": column for role, column in zip(roles, text_columns)}
    require_columns(reader, {"--skill-column (data.skill_column)": skill_column, **text}, tuple(text))


def skill_values(batch: pa.RecordBatch, skill_column: str, description: str, first_row: int) -> list[str]:
    """The batch's skill names; a missing (null) skill is an error naming the row."""
    values = batch.column(batch.schema.get_field_index(skill_column))
    if values.null_count:
        row = first_row + int(np.flatnonzero(np.asarray(values.is_null()))[0])
        raise ValueError(
            f"{description}: row {row} has no value in skill column {skill_column!r}; "
            "every row needs a skill (fill or drop those rows)"
        )
    return [str(value) for value in values.to_pylist()]


# ----------------------------------------------------------------------------- training from a table


@dataclass
class SkillTable:
    """A table in memory: per skill, its training and held-out row numbers, and the text columns."""

    columns: dict[str, pa.ChunkedArray]
    train_rows: dict[str, np.ndarray]
    val_rows: dict[str, np.ndarray]


def text_columns_of(config: JobConfig) -> list[str]:
    data = config.data
    return [data.prompt_column, data.answer_column] if data.prompt_column else [data.text_column]


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


def skill_table(config: JobConfig) -> SkillTable:
    data = config.data
    return load_skill_table(data.path, data.skill_column, tuple(text_columns_of(config)), data.num_val_per_skill,
                            data.split_seed)  # fmt: skip


def table_items(config: JobConfig, skill: str, rows: np.ndarray) -> list[Sample | str]:
    """Samples (prompt/answer tables) or texts of these table rows."""
    table, data = skill_table(config), config.data
    if data.prompt_column:
        prompts = table.columns[data.prompt_column].take(pa.array(rows)).to_pylist()
        answers = table.columns[data.answer_column].take(pa.array(rows)).to_pylist()
        return [Sample(skill=skill, prompt=prompt, answer=answer) for prompt, answer in zip(prompts, answers)]
    return table.columns[data.text_column].take(pa.array(rows)).to_pylist()


class TableSkillStream:
    """A skill's training rows of a table as one sequence of token rows addressed by global position.

    Epoch e is the skill's rows in a seeded order (seed, epoch, skill); without packing, token row g
    is document g of the concatenated epochs; with packing, the epoch's documents are joined with EOS
    and cut into rows. Every rank generates the same sequence and keeps only the rows it takes, so
    any worker count trains the same rows. Positions only grow, so rows before the last taken one
    are dropped.
    """

    DOCUMENTS_PER_CHUNK = 256

    def __init__(self, setup: SkillSetup, skill: str, tokenizer, config: JobConfig) -> None:
        self.skill, self.tokenizer, self.config = skill, tokenizer, config
        self.rows = skill_table(config).train_rows[skill]
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
                items = table_items(self.config, self.skill, order[start : start + self.DOCUMENTS_PER_CHUNK])
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
    """Train straight from a table with a skill column (`data.source=table`, `data.skill_column`)."""

    kind = "table"

    @classmethod
    def describe(cls, config: JobConfig) -> dict[str, Any]:
        data = config.data
        if not data.tokenizer_path:
            raise ValueError(
                "data.source=table needs data.tokenizer_path: train one on the table with `skillit-ray prepare table "
                "--input ... --tokenizer-vocab-size 4096 --out DIR` (then use DIR/tokenizer) or give your own"
            )
        table = skill_table(config)
        return {
            "family": "table",
            "all_skills": sorted(table.train_rows),
            "dataset_path": data.path,
            "tokenizer_path": data.tokenizer_path,
        }

    def check(self, config: JobConfig) -> None:
        pass  # describe() read the whole table: columns, types, skills and split sizes are checked there

    def load_tokenizer(self):
        return load_checked_tokenizer(self.setup.tokenizer_path)

    def open_stream(self, skill: str, tokenizer, config: JobConfig, rank: int, world_size: int):
        return TableSkillStream(self.setup, skill, tokenizer, config)

    def validation_set(self, skill: str, tokenizer, config: JobConfig) -> ValidationSet:
        items = table_items(config, skill, skill_table(config).val_rows[skill])
        return validation_from_items(skill, items, tokenizer, config.data.sequence_length)

    def pool_reader(self, skill: str, count: int, config: JobConfig) -> Callable[[int], Sample | str]:
        rows = skill_table(config).train_rows[skill]
        return lambda index: table_items(config, skill, rows[[index % rows.size]])[0]
