"""`skillit-ray prepare table`: a table with a skill column -> per-skill shards, a validation split, a tokenizer.

Role in the flow: the user's table -> **prepare table** -> the parquet source (`data/sources/parquet.py`). Reads
parquet (file, directory, glob), JSON lines, CSV or a `datasets` directory (`data/table.py`) in Arrow
batches, never whole into memory, in three passes:

1. count each skill's rows (the skill column only); skills below `min_skill_rows` are dropped or
   merged into `other` (`tiny_skills`), and every decision is logged and written to the manifest;
2. hold out a seeded choice of `val_rows` rows (or `val_fraction` of the rows) of every skill and
   stream every row to `DIR/train|val/<skill>/part-*.parquet` (`rows_per_part` rows a file). With a
   task column, each skill's training rows are written round-robin over its tasks (seeded), so a
   skill's stream is uniform over its tasks until small tasks run out (Natural-Instructions style);
3. train a byte-level BPE on the training split, or take a tokenizer directory or tokenizer.json
   (a pad and an EOS token are added when missing); save it to `DIR/tokenizer`, count every skill's
   tokens and check the unknown-token rate; the manifest is written last.

Columns written: `text` (the text, or prompt + answer), `prompt` and `answer` for prompt/answer
tables (validation then scores the answer tokens), `task` with a task column. An existing non-empty
output directory is refused unless `overwrite`, which clears it first.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from skillit_ray.data.prepare.generators import empty_output_directory
from skillit_ray.data.sources.parquet import MANIFEST_FILE
from skillit_ray.data.storage import atomic_write_bytes
from skillit_ray.data.table import TABLE_BATCH_ROWS, check_columns, open_table, skill_values
from skillit_ray.data.tokenizer import check_unknown_rates, tokenizer_from_path, train_bpe_tokenizer

logger = logging.getLogger("skillit_ray")

MERGED_SKILL = "other"
"""Name of the skill that tiny skills are merged into with `tiny_skills="merge"`."""


@dataclass
class TableOptions:
    """What `skillit-ray prepare table` reads and how it splits (the command's flags)."""

    input: str
    out: str
    skill_column: str = "skill"
    text_column: str = "text"
    prompt_column: str = ""
    answer_column: str = ""
    task_column: str = ""
    val_rows: int = 0
    val_fraction: float = 0.0
    seed: int = 0
    min_skill_rows: int = 0
    tiny_skills: str = "drop"
    tokenizer: str = ""
    tokenizer_vocab_size: int = 0
    rows_per_part: int = 2000
    max_unknown_token_rate: float = 0.02
    overwrite: bool = False
    decisions: list[str] = field(default_factory=list)

    @classmethod
    def from_arguments(cls, arguments: Any, max_unknown_token_rate: float) -> TableOptions:
        """The options of `skillit-ray prepare table` from its parsed flags (every field but the decisions)."""
        if not arguments.input:
            raise ValueError("prepare table needs --input (a parquet/JSONL/CSV table, a datasets directory or hf:NAME)")
        names = [
            item.name for item in dataclasses.fields(cls) if item.name not in ("decisions", "max_unknown_token_rate")
        ]
        return cls(**{name: getattr(arguments, name) for name in names}, max_unknown_token_rate=max_unknown_token_rate)

    @property
    def text_columns(self) -> list[str]:
        return [self.prompt_column, self.answer_column] if self.prompt_column else [self.text_column]

    def validate(self) -> None:
        if bool(self.prompt_column) != bool(self.answer_column):
            raise ValueError("--prompt-column and --answer-column go together; give both or neither")
        if (self.val_rows > 0) == (self.val_fraction > 0):
            raise ValueError("give exactly one of --val-rows N or --val-fraction F (0 < F < 1): the validation split")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"--val-fraction {self.val_fraction} must be in (0, 1)")
        if self.tiny_skills not in ("drop", "merge"):
            raise ValueError(f"--tiny-skills {self.tiny_skills!r} must be drop or merge")
        if bool(self.tokenizer) == bool(self.tokenizer_vocab_size):
            raise ValueError(
                "give exactly one of --tokenizer PATH (a directory or tokenizer.json) or --tokenizer-vocab-size N "
                "(train a byte-level BPE on the training split)"
            )
        if self.rows_per_part < 1:
            raise ValueError(f"--rows-per-part {self.rows_per_part} must be >= 1")


def prepare_table(options: TableOptions) -> Path:
    """Write the per-skill dataset of a table; returns the manifest path. Errors name the file, column and fix."""
    options.validate()
    reader = open_table(options.input)
    check_columns(reader, options.skill_column, options.text_columns)
    if options.task_column and options.task_column not in reader.schema.names:
        raise ValueError(f"{reader.description} has no task column {options.task_column!r}; its columns are "
                         f"{reader.schema.names}")  # fmt: skip
    out = empty_output_directory(options.out, options.overwrite)
    counts = _count_rows(reader, options)
    renamed = _tiny_skill_rule(counts, options)
    split = _validation_positions(counts, renamed, options)
    _write_splits(reader, renamed, split, options, out)
    tokenizer = _tokenizer(options, out)
    summary = _token_report(out, tokenizer, sorted(split), options)
    manifest = {
        "source": "table", "skills": sorted(split), "rows": summary, "tokenizer": "tokenizer", "text_column": "text",
        "input": options.input, "skill_column": options.skill_column, "task_column": options.task_column or None,
        "prompt_answer": bool(options.prompt_column), "seed": options.seed, "decisions": options.decisions,
        "split": {"val_rows": options.val_rows or None, "val_fraction": options.val_fraction or None},
    }  # fmt: skip
    atomic_write_bytes(out / MANIFEST_FILE, (json.dumps(manifest, indent=2) + "\n").encode())
    return out / MANIFEST_FILE


def _count_rows(reader, options: TableOptions) -> Counter:
    counts: Counter = Counter()
    seen = 0
    for batch in reader.batches([options.skill_column], TABLE_BATCH_ROWS):
        names = skill_values(batch, options.skill_column, reader.description, seen)
        counts.update(names)
        seen += len(names)
    bad = sorted(name for name in counts if not name.strip() or name in (".", "..") or "/" in name or "\\" in name)
    if bad:
        raise ValueError(f"skill names {bad} in column {options.skill_column!r} cannot name a directory; rename them")
    return counts


def _tiny_skill_rule(counts: Counter, options: TableOptions) -> dict[str, str | None]:
    """Original skill -> kept name, `MERGED_SKILL`, or None (dropped); every decision logged."""
    renamed: dict[str, str | None] = {}
    for skill, count in sorted(counts.items()):
        if count >= options.min_skill_rows:
            renamed[skill] = skill
            continue
        renamed[skill] = MERGED_SKILL if options.tiny_skills == "merge" else None
        action = f"merged into {MERGED_SKILL!r}" if renamed[skill] else "dropped"
        decision = f"skill {skill!r}: {count} rows < --min-skill-rows {options.min_skill_rows}: {action}"
        options.decisions.append(decision)
        logger.warning(decision)
    return renamed


def _validation_positions(counts: Counter, renamed: dict, options: TableOptions) -> dict[str, np.ndarray]:
    """Per kept skill, the sorted positions (in the skill's row order) held out for validation."""
    totals: Counter = Counter()
    for skill, count in counts.items():
        if renamed[skill] is not None:
            totals[renamed[skill]] += count
    if not totals:
        raise ValueError(f"no skill has --min-skill-rows {options.min_skill_rows} rows; lower it")
    split = {}
    for skill, total in sorted(totals.items()):
        num_val = options.val_rows or max(1, round(options.val_fraction * total))
        if total - num_val < 1:
            raise ValueError(
                f"skill {skill!r} has {total} rows: holding out {num_val} for validation leaves none to train on; "
                "lower --val-rows / --val-fraction, or drop it with --min-skill-rows"
            )
        generator = np.random.default_rng([options.seed, *skill.encode()])
        split[skill] = np.sort(generator.choice(total, num_val, replace=False))
    return split


class _PartWriter:
    """Buffers one (split, skill) directory's rows and writes `part-NNNNN.parquet` files of `rows_per_part`."""

    def __init__(self, directory: Path, rows_per_part: int) -> None:
        self.directory, self.rows_per_part = directory, rows_per_part
        self.rows: dict[str, list] = defaultdict(list)
        self.num_parts = self.num_rows = 0

    def add(self, row: dict[str, str]) -> None:
        for column, value in row.items():
            self.rows[column].append(value)
        self.num_rows += 1
        if len(next(iter(self.rows.values()))) >= self.rows_per_part:
            self.flush()

    def flush(self) -> None:
        if self.rows and next(iter(self.rows.values())):
            sink = pa.BufferOutputStream()
            pq.write_table(pa.table(dict(self.rows)), sink)
            atomic_write_bytes(self.directory / f"part-{self.num_parts:05d}.parquet", sink.getvalue().to_pybytes())
            self.num_parts += 1
        self.rows = defaultdict(list)


def _rows(reader, options: TableOptions) -> Iterator[tuple[str, dict[str, str]]]:
    """(original skill, output row) of every table row, in table order."""
    columns = [options.skill_column, *options.text_columns] + ([options.task_column] if options.task_column else [])
    seen = 0
    for batch in reader.batches(list(dict.fromkeys(columns)), TABLE_BATCH_ROWS):
        skills = skill_values(batch, options.skill_column, reader.description, seen)
        values = {column: batch.column(batch.schema.get_field_index(column)).to_pylist() for column in columns}
        for index, skill in enumerate(skills):
            texts = {column: values[column][index] or "" for column in options.text_columns}
            row = {"text": "".join(texts[column] for column in options.text_columns)}
            if options.prompt_column:
                row.update(prompt=texts[options.prompt_column], answer=texts[options.answer_column])
            if options.task_column:
                row["task"] = str(values[options.task_column][index])
            yield skill, row
        seen += len(skills)


def _write_splits(reader, renamed: dict, split: dict[str, np.ndarray], options: TableOptions, out: Path) -> None:
    """Stream every kept row to its skill's train or validation parts (train via per-task staging if asked)."""
    staging = out / ".staging"
    writers: dict[Path, _PartWriter] = {}
    positions: Counter = Counter()
    for original, row in _rows(reader, options):
        skill = renamed[original]
        if skill is None:
            continue
        position, positions[skill] = positions[skill], positions[skill] + 1
        held_out = split[skill]
        is_val = held_out[min(np.searchsorted(held_out, position), held_out.size - 1)] == position
        directory = out / "val" / skill if is_val else out / "train" / skill
        if not is_val and options.task_column:
            directory = staging / skill / row["task"]
        if directory not in writers:
            writers[directory] = _PartWriter(directory, options.rows_per_part)
        writers[directory].add(row)
    for writer in writers.values():
        writer.flush()
    if options.task_column:
        for skill in split:
            _interleave_tasks(staging / skill, _PartWriter(out / "train" / skill, options.rows_per_part), options.seed)
        shutil.rmtree(staging, ignore_errors=True)


def _interleave_tasks(skill_staging: Path, writer: _PartWriter, seed: int) -> None:
    """Write a skill's training rows round-robin over its tasks, in a seeded task order."""
    tasks = sorted(path for path in skill_staging.iterdir() if path.is_dir())
    order = np.random.default_rng([seed, 0x7A5C]).permutation(len(tasks))
    iterators = [_staged_rows(tasks[index]) for index in order]
    while iterators:
        still_going = []
        for iterator in iterators:
            row = next(iterator, None)
            if row is not None:
                writer.add(row)
                still_going.append(iterator)
        iterators = still_going
    writer.flush()


def _staged_rows(directory: Path) -> Iterator[dict[str, str]]:
    for part in sorted(directory.glob("*.parquet")):
        for batch in pq.ParquetFile(part).iter_batches(batch_size=256):
            yield from batch.to_pylist()


def _train_texts(out: Path) -> Iterator[str]:
    for part in sorted((out / "train").glob("*/*.parquet")):
        for batch in pq.ParquetFile(part).iter_batches(batch_size=1024, columns=["text"]):
            yield from batch.column(0).to_pylist()


def _tokenizer(options: TableOptions, out: Path):
    if options.tokenizer:
        tokenizer = tokenizer_from_path(options.tokenizer)
    else:
        tokenizer = train_bpe_tokenizer(_train_texts(out), options.tokenizer_vocab_size)
    tokenizer.save_pretrained(str(out / "tokenizer"))
    return tokenizer


def _token_report(out: Path, tokenizer, skills: list[str], options: TableOptions) -> dict[str, dict[str, int]]:
    """Rows and tokens per skill and split; refuses a tokenizer with a high unknown rate on any skill."""
    summary, samples = {}, {}
    for skill in skills:
        summary[skill] = {}
        for split in ("train", "val"):
            rows = tokens = 0
            for part in sorted((out / split / skill).glob("*.parquet")):
                texts = pq.read_table(part, columns=["text"]).column(0).to_pylist()
                rows += len(texts)
                tokens += sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
                samples.setdefault(skill, texts[:200])
            summary[skill].update({f"{split}_rows": rows, f"{split}_tokens": tokens})
    check_unknown_rates(tokenizer, samples, options.max_unknown_token_rate, f"for {options.input}")
    width = max(len("skill"), *(len(skill) for skill in skills))
    lines = [f"{'skill'.ljust(width)}  train rows  val rows  train tokens  val tokens"]
    for skill, counts in summary.items():
        lines.append(f"{skill.ljust(width)}  {counts['train_rows']:10d}  {counts['val_rows']:8d}  "
                     f"{counts['train_tokens']:12d}  {counts['val_tokens']:10d}")  # fmt: skip
    logger.info("prepared %s:\n%s", out, "\n".join(lines))
    return summary
