"""Tables with a skill column, read in batches: parquet, JSON lines, CSV or a `datasets` dataset.

Role in the flow: the user's table -> **table** -> `prepare/table.py` (streamed into per-skill shards),
the table source (`sources/table.py`, trained on as is) and `skillit-ray discover`. A table is parquet
(a file, a directory or a glob), JSON lines, CSV, or a Hugging Face `datasets` dataset (a
`save_to_disk` directory; `hf:NAME` loads by name where the machine reaches the hub). `open_table`
reads it in fixed-size Arrow batches of the columns asked for, in a deterministic order (sorted file
names), never whole into memory.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

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
    text = {f"--{role}-column (data.table.{role}_column)": column for role, column in zip(roles, text_columns)}
    require_columns(reader, {"--skill-column (data.table.skill_column)": skill_column, **text}, tuple(text))


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
