"""A token store as a source (`data.source: tokens`): exact quotas read as token rows by global index.

Role in the flow: `skillit-ray prepare tokens` -> the store (`data/store.py`) -> **tokens source** ->
assembly. Position g of a skill is located by `tokens.PositionalOrder` (a seeded shard order per
epoch, rows permuted within windows of `data.tokens.shuffle_window_rows`), so each step's per-skill
quotas are a few index look-ups, any worker count reads the same rows, and a resume needs only the
assembler's per-skill positions. Local shards are memory-mapped; object storage is read in blocks
with read-ahead (`store.ShardReader`). Nothing is tokenized during training.

With one shard per part file and the same window, the store reads row for row what
`data.parquet.split=positions` reads from the directory it was made from.

Checked before Ray starts, each naming the store's file and the fix: the format version, every skill
present, every shard's size against the manifest (a truncated copy), the tokenizer's hash against the
configured tokenizer, the sequence length and packing against `data.*`, token ids on a sample of
every skill against the vocabulary. The model's vocabulary is checked against the tokenizer by
`train/resolve.py`, as for every source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from skillit_ray.config.job import JobConfig
from skillit_ray.config.loading import choice, require
from skillit_ray.data.ray_datasets import epochs_for_run, store_skill_dataset
from skillit_ray.data.source import SkillSetup, SkillSource, ValidationSet
from skillit_ray.data.store import (
    ShardReader,
    file_sizes,
    local_tokenizer_directory,
    read_manifest,
    storage_filesystem,
    tokenizer_hash,
)
from skillit_ray.data.tokenizer import load_checked_tokenizer
from skillit_ray.data.tokens import PositionalOrder

CHECKED_ROWS_PER_SKILL = 64
"""Rows of every skill's first shard whose token ids are checked against the vocabulary at open."""


@dataclass(frozen=True)
class TokensOptions:
    """`data.tokens.*`."""

    path: str = ""
    """The store written by `skillit-ray prepare tokens` (a local directory or an s3:// / gs:// URI)."""
    shuffle_window_rows: int = 1000
    """Rows of a skill's epoch sequence permuted together (as `data.parquet.shuffle_buffer_rows` with
    split=positions); 1 keeps the stored order."""
    reader: str = "index"
    """"index" (rows by global position: identical for any worker count and across resumes) or
    "streaming_split" (one Ray Data dataset of the shards per skill handed to Ray Train, each worker
    reading its `streaming_split`: exact quotas, but rows depend on the worker count and a resume
    restarts epochs; `data/ray_datasets.py`)."""

    def __post_init__(self) -> None:
        choice("data.tokens.reader", self.reader, ("index", "streaming_split"))
        window = self.shuffle_window_rows
        require(window >= 1, f"data.tokens.shuffle_window_rows={window} must be >= 1 (1 keeps the stored order)")


class SkillShards:
    """One skill's shards of one split: readers and row counts, in manifest order."""

    def __init__(self, setup: SkillSetup, split: str, skill: str) -> None:
        manifest = setup.data_index
        filesystem, root = storage_filesystem(setup.dataset_path)
        entry = manifest["splits"][split][skill]
        self.sequence_length, self.dtype = manifest["sequence_length"], np.dtype(manifest["dtype"]).newbyteorder("<")
        self.part_rows = [shard["rows"] for shard in entry["shards"]]
        self.readers = [
            ShardReader(
                filesystem,
                f"{root}/{split}/{skill}/{shard['name']}.tokens",
                shard["rows"],
                self.sequence_length,
                self.dtype,
            )  # fmt: skip
            for shard in entry["shards"]
        ]
        self.masks = [
            ShardReader(
                filesystem,
                f"{root}/{split}/{skill}/{shard['name']}.mask",
                shard["rows"],
                self.sequence_length,
                np.dtype(np.uint8),
            )  # fmt: skip
            for shard in entry["shards"]
            if shard["has_mask"]
        ]

    def first_rows(self, count: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The first `count` rows in shard order (fewer when the skill is shorter), and their masks."""
        rows, masks, left = [], [], count
        for index, reader in enumerate(self.readers):
            if left <= 0:
                break
            taken = min(left, reader.rows)
            rows.append(reader.read(0, taken))
            if self.masks:
                masks.append(self.masks[index].read(0, taken))
            left -= taken
        stacked = np.concatenate(rows).astype(np.int32)
        return stacked, (np.concatenate(masks).astype(bool) if self.masks else None)


class TokenStoreStream:
    """A skill's training rows by global position: `take(count, first_global_index) -> int32 rows`."""

    def __init__(self, shards: SkillShards, seed: int, window_rows: int) -> None:
        self.shards = shards
        self.order = PositionalOrder(shards.part_rows, seed, window_rows)

    def take(self, count: int, first_global_index: int) -> np.ndarray:
        parts, rows = self.order.locate_many(np.arange(first_global_index, first_global_index + count))
        out = np.empty((count, self.shards.sequence_length), dtype=np.int32)
        for part in np.unique(parts):
            chosen = parts == part
            out[chosen] = self.shards.readers[int(part)].take(rows[chosen])
        return out

    def state_dict(self) -> dict[str, Any]:
        return {}  # positions are global and kept by the assembler

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def check_store_files(location: str, manifest: dict[str, Any], skills_by_split: dict[str, list[str]]) -> None:
    """Every shard of these skills is there with the manifest's size (a truncated or partial copy fails)."""
    filesystem, root = storage_filesystem(location)
    for split, skills in skills_by_split.items():
        sizes = file_sizes(filesystem, f"{root}/{split}")
        row_bytes = manifest["sequence_length"] * np.dtype(manifest["dtype"]).itemsize
        for skill in skills:
            entry = manifest["splits"][split].get(skill)
            if entry is None:
                raise ValueError(
                    f"token store {location} has no {split} data for skill {skill!r} (its skills: "
                    f"{sorted(manifest['splits'][split])[:8]}...); drop the skill or prepare the store again"
                )
            for shard in entry["shards"]:
                path = f"{root}/{split}/{skill}/{shard['name']}.tokens"
                expected = shard["rows"] * row_bytes
                if sizes.get(path) != expected:
                    raise ValueError(
                        f"token shard {path} has {sizes.get(path, 0)} bytes, the manifest says {expected} "
                        "(a truncated or partial copy?); copy the store again or run `skillit-ray prepare tokens`"
                    )


class TokenStoreSource(SkillSource):
    """Pre-tokenized per-skill shards: nothing tokenized at run time."""

    names = ("tokens",)
    Options = TokensOptions

    @classmethod
    def check_options(cls, options: TokensOptions, config: JobConfig) -> None:
        require(
            bool(options.path),
            "data.source=tokens needs data.tokens.path (a store written by `skillit-ray prepare tokens`)",
        )

    @classmethod
    def describe(cls, config: JobConfig, options: TokensOptions) -> dict[str, Any]:
        manifest = read_manifest(options.path)
        return {
            "family": manifest.get("source", "tokens"),
            "all_skills": list(manifest["skills"]),
            "dataset_path": options.path,
            "tokenizer_path": config.data.tokenizer_path,
            "generator_options": dict(manifest["source_options"].get("generator_options") or {}),
            "data_index": manifest,
        }

    @property
    def manifest(self) -> dict[str, Any]:
        return self.setup.data_index

    def stored_shape(self) -> tuple[int, bool]:
        return int(self.manifest["sequence_length"]), bool(self.manifest["packed"])

    def check(self, config: JobConfig) -> None:
        location, manifest = self.setup.dataset_path, self.manifest
        check_store_files(location, manifest, {"train": self.setup.train_skills, "val": self.setup.eval_skills})
        tokenizer = self.load_tokenizer()
        if tokenizer_hash(tokenizer) != manifest["tokenizer_sha256"]:
            raise ValueError(
                f"token store {location} was made by another tokenizer than data.tokenizer_path="
                f"{self.setup.tokenizer_path} (tokenizer hash differs): leave data.tokenizer_path empty to use the "
                "store's own, or prepare the store again with this tokenizer (`prepare tokens --tokenizer`)"
            )
        for skill in self.setup.train_skills:
            rows, _ = SkillShards(self.setup, "train", skill).first_rows(CHECKED_ROWS_PER_SKILL)
            if int(rows.max()) >= manifest["vocab_size"]:
                raise ValueError(
                    f"token store {location}: skill {skill!r} holds token id {int(rows.max())}, outside the "
                    f"tokenizer's {manifest['vocab_size']} ids (a corrupt shard); prepare the store again"
                )

    def load_tokenizer(self):
        path = self.setup.tokenizer_path or local_tokenizer_directory(
            self.setup.dataset_path, self.manifest["tokenizer_sha256"]
        )
        return load_checked_tokenizer(path)

    def open_stream(self, skill: str, tokenizer, config: JobConfig, rank: int, world_size: int):
        shards = SkillShards(self.setup, "train", skill)
        return TokenStoreStream(shards, config.train.seed, self.options.shuffle_window_rows)

    def ray_dataset(self, skill: str, tokenizer, config: JobConfig):
        if self.options.reader != "streaming_split":
            return None
        epochs = epochs_for_run(config, self.manifest["splits"]["train"][skill]["rows"])
        return store_skill_dataset(self.setup.dataset_path, self.manifest, skill, config.train.seed, epochs)

    def validation_set(self, skill: str, tokenizer, config: JobConfig) -> ValidationSet:
        rows, mask = SkillShards(self.setup, "val", skill).first_rows(config.data.num_val_per_skill)
        return ValidationSet(skill, token_rows=rows, loss_mask=mask)

    def pool_reader(self, skill: str, count: int, config: JobConfig) -> Callable[[int], np.ndarray]:
        """The first training rows of the skill in shard order (cycled when short), as token rows."""
        rows, _ = SkillShards(self.setup, "train", skill).first_rows(count)
        return lambda index: rows[index % len(rows)]

    def sample_items(self, skill: str, count: int, config: JobConfig) -> list:
        return list(SkillShards(self.setup, "train", skill).first_rows(count)[0])
