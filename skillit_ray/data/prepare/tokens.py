"""`skillit-ray prepare tokens`: a prepared directory tokenized once into a token store (`data/store.py`).

Role in the flow: prepare (generators, a table, the corpus -> a parquet directory) -> **prepare tokens** ->
the store -> the tokens source (`sources/tokens.py`). This module is the pure core: the plan (which
shards, which shape, which tokenizer), one shard's tokenization and writing, the manifest.
`tokenize_job.py` runs the shards on a Ray Data actor pool; `prepare_in_process` runs them here (the
benchmark's one-process baseline).

Each input part file becomes one shard, so a shard's bytes depend only on its part, the tokenizer and
the shape: a prepare killed and run again skips every shard with a record and writes the rest, and
the store is the same, byte for byte. Training rows come from the text column, packed (documents joined
with EOS and cut into full rows) or one document per row, as training reads them; validation rows are
one document per row, with a loss mask of the answer tokens when the part has prompt and answer
columns (validation then scores the answers, as with the parquet source: a synthetic skill's
one-token answer has the same loss; its accuracy is not kept).

The shape chosen here is the store's: `sequence_length` 0 picks it from a sample of every skill
(`tokens.automatic_sequence_length`), `pack` None packs plain text and keeps prompt/answer samples
one per row. Choices are written to `plan.json` first: a resumed prepare must use the same ones.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from skillit_ray.data.hub import find_model_files, is_hub_id
from skillit_ray.data.sources.parquet import read_manifest as read_prepared_manifest
from skillit_ray.data.sources.parquet import samples_from_table
from skillit_ray.data.store import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    SPLITS,
    TOKENIZER_DIRECTORY,
    ShardRecord,
    build_manifest,
    file_sizes,
    read_record,
    storage_filesystem,
    token_dtype,
    tokenizer_hash,
    write_atomically,
    write_manifest,
    write_shard,
)
from skillit_ray.data.streams import list_parts
from skillit_ray.data.tokenizer import UNKNOWN_RATE_SAMPLE_ROWS, load_checked_tokenizer
from skillit_ray.data.tokens import automatic_sequence_length, encode_prompt_answer, encode_texts, token_ids
from skillit_ray.skills.evaluate import encode_answer_queries

logger = logging.getLogger(__name__)

PLAN_FILE = "plan.json"


@dataclass(frozen=True)
class TokenStoreOptions:
    """What `skillit-ray prepare tokens` was asked for."""

    input: str
    """A prepared directory (`skillit-ray prepare lego|table|...`): manifest.json, train/, val/, tokenizer/."""
    out: str
    """The store: a local directory or an s3:// / gs:// URI."""
    sequence_length: int = 0
    """Tokens per row; 0: from a sample of every skill (`tokens.automatic_sequence_length`)."""
    pack: bool | None = None
    """Training rows: documents joined with EOS and cut into full rows; None: pack plain text only."""
    tokenizer: str = ""
    """A tokenizer directory to use instead of the input's own."""
    workers: int = 0
    """Tokenizing actors (Ray); 0: one per CPU of the cluster."""
    overwrite: bool = False
    """Replace a store made with other options (a finished or half-made one)."""

    def __post_init__(self) -> None:
        if self.sequence_length < 0:
            raise ValueError(f"--sequence-length {self.sequence_length} must be >= 0 (0: from the data)")
        if self.workers < 0:
            raise ValueError(f"--workers {self.workers} must be >= 0 (0: one per CPU)")


@dataclass(frozen=True)
class ShardWork:
    """One input part file -> one shard."""

    split: str
    skill: str
    index: int
    part: str


@dataclass
class StorePlan:
    """Everything a shard writer needs: where, the header (shape, dtype, tokenizer), the work."""

    out: str
    header: dict[str, Any]
    skills: list[str]
    work: list[ShardWork] = field(default_factory=list)


def part_columns(part: Path) -> list[str]:
    return pq.read_schema(str(part)).names


def sample_lengths(tokenizer, parts: list[Path], text_column: str) -> list[int]:
    """Token lengths of up to `UNKNOWN_RATE_SAMPLE_ROWS` first documents of a skill."""
    table = pq.read_table(str(parts[0]), columns=[text_column]).slice(0, UNKNOWN_RATE_SAMPLE_ROWS)
    return [len(ids) for ids in token_ids(tokenizer, [str(text) for text in table.column(0).to_pylist()])]


def plan_store(options: TokenStoreOptions) -> tuple[StorePlan, Any]:
    """(the plan, the tokenizer); errors name the input, the key and the fix. Writes nothing."""
    manifest = read_prepared_manifest(options.input)
    root = Path(options.input)
    tokenizer_path = options.tokenizer or str(root / manifest.get("tokenizer", "tokenizer"))
    if is_hub_id(tokenizer_path):  # a model's own tokenizer, by hub id (fetched into the cache when absent)
        tokenizer_path = find_model_files(tokenizer_path).directory
    tokenizer = load_checked_tokenizer(tokenizer_path, key="--tokenizer")
    if tokenizer.eos_token_id is None:
        raise ValueError(f"the tokenizer {tokenizer_path} has no EOS token; packing needs one (add it and re-save)")
    text_column = manifest.get("text_column", "text")
    skills, work = list(manifest["skills"]), []
    for split in SPLITS:
        for skill in skills:
            parts = list_parts(root / split / skill)
            if not parts:
                raise ValueError(f"{root / split / skill} has no parquet part files; every skill needs train/ and val/")
            work.extend(ShardWork(split, skill, index, str(part)) for index, part in enumerate(parts))
    first_train = [list_parts(root / "train" / skill) for skill in skills]
    columns = part_columns(first_train[0][0])
    if text_column not in columns:
        raise ValueError(f"{first_train[0][0]} has no {text_column!r} column (its columns: {columns})")
    samples = {"prompt", "answer"} <= set(columns)
    pack = (not samples) if options.pack is None else options.pack
    sequence_length, why = options.sequence_length, "--sequence-length"
    if not sequence_length:
        lengths = [length for parts in first_train for length in sample_lengths(tokenizer, parts, text_column)]
        sequence_length, why = automatic_sequence_length(lengths, pack)
    vocab_size = len(tokenizer)
    header = {
        "format_version": FORMAT_VERSION,
        "source": manifest.get("source", "parquet"),
        "source_options": {
            "input": str(root.resolve()),
            "text_column": text_column,
            "generator_options": manifest.get("generator_options") or {},
        },  # fmt: skip
        "sequence_length": int(sequence_length),
        "packed": bool(pack),
        "dtype": token_dtype(vocab_size).name,
        "vocab_size": int(vocab_size),
        "tokenizer_sha256": tokenizer_hash(tokenizer),
        "pad_id": int(tokenizer.pad_token_id),
        "eos_id": int(tokenizer.eos_token_id),
    }
    logger.info("token store %s: %d skills, %d shards, %d tokens a row (%s), packed=%s, %s ids",
                options.out, len(skills), len(work), sequence_length, why, pack, header["dtype"])  # fmt: skip
    return StorePlan(options.out, header, skills, work), tokenizer


def read_json(filesystem: pafs.FileSystem, path: str) -> dict[str, Any] | None:
    if filesystem.get_file_info(path).type == pafs.FileType.NotFound:
        return None
    with filesystem.open_input_stream(path) as stream:
        return json.loads(stream.read())


def begin_store(plan: StorePlan, tokenizer, overwrite: bool) -> bool:
    """Make the store's directory ready; returns False when a finished store with this plan is already there.

    A store (finished or not) made with another plan is refused unless `overwrite`: resuming it would
    mix shards of two shapes. Leftover temporary files of a killed prepare are removed (local disk).
    """
    filesystem, root = storage_filesystem(plan.out)
    existing = file_sizes(filesystem, root)
    previous = read_json(filesystem, f"{root}/{PLAN_FILE}")
    if existing and previous != plan.header:
        if not overwrite:
            what = "a store made with other options" if previous else "files that are not a token store"
            differs = [key for key in plan.header if plan.header[key] != (previous or {}).get(key)]
            raise ValueError(
                f"--out {plan.out} holds {what} ({len(existing)} files"
                + (f"; differs in {differs}" if previous else "")
                + "); choose another --out, or pass --overwrite to replace it"
            )
        logger.warning("--overwrite: deleting %d files under %s", len(existing), plan.out)
        filesystem.delete_dir_contents(root, missing_dir_ok=True)
        existing = {}
    for path in existing:
        if path.endswith(".partial") and isinstance(filesystem, pafs.LocalFileSystem):
            Path(path).unlink(missing_ok=True)
    manifest = read_json(filesystem, f"{root}/{MANIFEST_FILE}")
    if manifest is not None and previous == plan.header:
        logger.info("token store %s is already complete; nothing to do", plan.out)
        return False
    if previous is None:
        write_atomically(filesystem, f"{root}/{PLAN_FILE}", (json.dumps(plan.header, indent=1) + "\n").encode())
    save_tokenizer(filesystem, root, tokenizer)
    return True


def save_tokenizer(filesystem: pafs.FileSystem, root: str, tokenizer) -> None:
    """The tokenizer's files into STORE/tokenizer/, each written atomically."""
    with tempfile.TemporaryDirectory() as staging:
        tokenizer.save_pretrained(staging)
        for path in sorted(Path(staging).iterdir()):
            write_atomically(filesystem, f"{root}/{TOKENIZER_DIRECTORY}/{path.name}", path.read_bytes())


def tokenize_part(work: ShardWork, tokenizer, header: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """(rows, answer mask or None) of one part: training rows from the text column as training reads
    them (packed or not), validation rows one document per row, masked to the answers when it has them."""
    columns = part_columns(Path(work.part))
    length, text_column = header["sequence_length"], header["source_options"]["text_column"]
    if work.split == "val" and {"prompt", "answer"} <= set(columns):
        return validation_rows(pq.read_table(work.part), work.skill, tokenizer, length)
    texts = [str(text) for text in pq.read_table(work.part, columns=[text_column]).column(0).to_pylist()]
    return encode_texts(tokenizer, texts, length, pack=header["packed"] and work.split == "train"), None


def validation_rows(table, skill: str, tokenizer, sequence_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Prompt/answer validation rows and the mask of the tokens scored, as the parquet source scores them
    (`source.validation_from_items`): a one-token answer alone (its loss is the synthetic skills'
    answer-token loss), a longer answer with its suffix."""
    samples = samples_from_table(table, skill)
    prompts = [sample.prompt for sample in samples]
    try:
        encode_answer_queries(tokenizer, samples)
        answers = [sample.answer for sample in samples]
    except ValueError:
        answers = [sample.answer + sample.suffix for sample in samples]
    return encode_prompt_answer(tokenizer, prompts, answers, sequence_length)


def prepare_shard(work: ShardWork, tokenizer, header: dict[str, Any], out: str) -> ShardRecord:
    """Tokenize and write one shard, or return the record of the finished one (a resumed prepare)."""
    filesystem, root = storage_filesystem(out)
    name = f"shard-{work.index:05d}"
    finished = read_record(filesystem, root, work.split, work.skill, name)
    if finished is not None:
        return finished
    rows, mask = tokenize_part(work, tokenizer, header)
    if rows.size and int(rows.max()) >= header["vocab_size"]:
        raise ValueError(f"{work.part}: token id {int(rows.max())} >= the tokenizer's {header['vocab_size']}")
    dtype = np.dtype(header["dtype"]).newbyteorder("<")
    return write_shard(filesystem, root, work.split, work.skill, work.index, rows, mask, dtype, header["pad_id"])


def finish_store(plan: StorePlan, records: list[ShardRecord]) -> dict[str, Any]:
    """Write the manifest (last: the store is complete from this moment); returns it."""
    done = {(record.split, record.skill, record.shard) for record in records}
    missing = [work for work in plan.work if (work.split, work.skill, f"shard-{work.index:05d}") not in done]
    if missing:
        raise ValueError(f"{len(missing)} shards were not written (first: {missing[0].part}); run prepare again")
    header = {key: value for key, value in plan.header.items() if key != "format_version"}
    manifest = build_manifest(records, plan.skills, header)
    filesystem, root = storage_filesystem(plan.out)
    write_manifest(filesystem, root, manifest)
    return manifest


def summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """Skills, rows and tokens per split of a manifest (what the CLI prints)."""
    return {
        split: {
            "skills": len(entries),
            "rows": sum(entry["rows"] for entry in entries.values()),
            "tokens": sum(entry["tokens"] for entry in entries.values()),
        }  # fmt: skip
        for split, entries in manifest["splits"].items()
    } | {"sequence_length": manifest["sequence_length"], "packed": manifest["packed"], "dtype": manifest["dtype"]}


def prepare_in_process(options: TokenStoreOptions) -> dict[str, Any]:
    """The whole prepare in this process, shard after shard (no Ray); returns the manifest."""
    plan, tokenizer = plan_store(options)
    if begin_store(plan, tokenizer, options.overwrite):
        return finish_store(plan, [prepare_shard(work, tokenizer, plan.header, plan.out) for work in plan.work])
    filesystem, root = storage_filesystem(plan.out)
    return read_json(filesystem, f"{root}/{MANIFEST_FILE}") or {}


def work_as_dict(work: ShardWork) -> dict[str, Any]:
    return asdict(work)
