"""Ray Data datasets of a run's skills, one per skill, and the stream that takes exact counts from a split.

Role in the flow: sources -> **ray datasets** -> Ray Train (`TorchTrainer(datasets=...)`, one
`streaming_split` per skill: K executors, not K x workers) -> `SplitStream` in the assembler. Two
kinds: rows read from a token store's shards (no tokenization in the stream) and text read with
`read_parquet` and tokenized by `map_batches` on the fly, for data the user will not pre-tokenize.

What holds in this mode: each step's per-skill counts are exact (every rank takes its count from its
split of the skill; a skill's dataset holds every pass the run needs, each in a seeded shard order, so
the run is one Ray Data epoch: splits synchronize at epoch starts, which ranks with different quotas
would deadlock on; every rank starts all its splits before the first step, in skill order, for the same
reason). What does not: which rows a rank gets depends on how Ray Data hands blocks to the
splits, so the rows differ between worker counts and between runs, and a resume starts the passes
again. The index readers (`data.source: tokens`,
`data.parquet.split=positions`) keep all three; `docs/performance.md` measures both.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from skillit_ray.config.job import JobConfig
from skillit_ray.data.store import storage_filesystem
from skillit_ray.data.tokens import epoch_part_order, tokenize_text_batch

logger = logging.getLogger(__name__)

READ_BATCH_ROWS = 256
"""Rows per batch a split hands its consumer."""
SPLIT_SHUFFLE_ROWS = 1000
"""Rows of a split's local shuffle buffer (Ray Data `local_shuffle_buffer_size`)."""


def epochs_for_run(config: JobConfig, rows: int) -> int:
    """Passes over a skill's rows that one split dataset holds: enough for every step of the run to take its
    share from this skill alone. A Ray Data split synchronizes its consumers at every epoch start, while
    exact per-rank quotas let ranks reach a skill's end at different steps: so the whole run is one Ray
    Data epoch (a deadlock otherwise, seen with 2 workers)."""
    steps, batch, workers = config.train.steps, config.train.batch_size, config.scaling.num_workers
    return int(np.ceil(steps * (batch + workers) / max(1, rows))) + 1


def read_store_shard(batch: dict[str, np.ndarray], location: str, sequence_length: int, dtype: str) -> dict:
    """A Ray Data `map_batches` function: the rows of the shards named in the batch, as int32 rows."""
    filesystem, _ = storage_filesystem(location)
    rows = []
    for path in batch["path"]:
        with filesystem.open_input_stream(str(path)) as stream:
            payload = stream.read()
        rows.append(np.frombuffer(payload, dtype=np.dtype(dtype).newbyteorder("<")).reshape(-1, sequence_length))
    return {"input_ids": np.concatenate(rows).astype(np.int32)}


def epoch_paths(paths: list[str], seed: int, epochs: int) -> list[str]:
    """The paths of `epochs` passes, each in its seeded order (`tokens.epoch_part_order`)."""
    return [paths[index] for epoch in range(epochs) for index in epoch_part_order(seed, epoch, len(paths))]


def store_skill_dataset(location: str, manifest: dict[str, Any], skill: str, seed: int, epochs: int):
    """One skill's training rows of a token store, `epochs` passes, as a Ray Data dataset (a block a shard)."""
    import ray.data

    _, root = storage_filesystem(location)
    shards = manifest["splits"]["train"][skill]["shards"]
    paths = epoch_paths([f"{root}/train/{skill}/{shard['name']}.tokens" for shard in shards], seed, epochs)
    return ray.data.from_items([{"path": path} for path in paths], override_num_blocks=len(paths)).map_batches(
        read_store_shard, batch_size=1, batch_format="numpy",
        fn_kwargs={"location": location, "sequence_length": manifest["sequence_length"], "dtype": manifest["dtype"]},
    )  # fmt: skip


def read_text_parts(batch: dict[str, np.ndarray], tokenizer, text_column: str, sequence_length: int, pack: bool):
    """A Ray Data `map_batches` function: the text parts named in the batch, read and tokenized."""
    import pyarrow.parquet as pq

    texts = [str(text) for path in batch["path"]
             for text in pq.read_table(str(path), columns=[text_column]).column(0).to_pylist()]  # fmt: skip
    columns = {text_column: np.asarray(texts, dtype=object)}
    return tokenize_text_batch(columns, tokenizer, text_column, sequence_length, pack)


def text_skill_dataset(paths: list[str], tokenizer, options: dict[str, Any], seed: int, epochs: int):
    """One skill's text part files, `epochs` passes, read and tokenized on the fly (a block a part file);
    `options`: text_column, sequence_length, pack (`tokens.tokenize_text_batch`). The passes are listed
    as items, not given to `read_parquet`, which reads a path listed twice only once."""
    import ray.data

    paths = epoch_paths(paths, seed, epochs)
    return ray.data.from_items([{"path": path} for path in paths], override_num_blocks=len(paths)).map_batches(
        read_text_parts, batch_size=1, batch_format="numpy", fn_kwargs={"tokenizer": tokenizer, **options}
    )


class SplitStream:
    """A skill's rows from this rank's split (a Ray `DataIterator` over the run's passes):
    `take(count, first_global_index)` takes the next `count` rows (the index is not used: a split has no
    global positions), shuffled within a local buffer of `shuffle_rows` rows."""

    def __init__(self, iterator, skill: str, sequence_length: int, seed: int, shuffle_rows: int) -> None:
        self.iterator, self.skill, self.seed, self.shuffle_rows = iterator, skill, seed, shuffle_rows
        self._batches: Iterator[dict] | None = None
        self._pending = np.zeros((0, sequence_length), dtype=np.int32)

    def _next_batch(self) -> np.ndarray:
        if self._batches is None:
            shuffle = {"local_shuffle_buffer_size": self.shuffle_rows, "local_shuffle_seed": self.seed}
            self._batches = iter(self.iterator.iter_batches(batch_size=READ_BATCH_ROWS, batch_format="numpy",
                                                            **(shuffle if self.shuffle_rows > 1 else {})))  # fmt: skip
        batch = next(self._batches, None)
        if batch is None:
            raise ValueError(
                f"skill {self.skill!r}: this worker's streaming split ran out of rows before the run's end "
                "(`ray_datasets.epochs_for_run` sized it); use reader=index, or report this with the config"
            )
        return batch["input_ids"]

    def start(self) -> None:
        """Read the first batch. A split's first read waits until every rank has made its own, so every rank
        starts all its skills' splits before the first step, in skill order: ranks that opened skills as
        their counts first asked for them waited on each other (rank 0 in skill B for rank 1, rank 1 in
        skill A for rank 0), a deadlock seen with 2 workers."""
        if self._batches is None:
            self._pending = np.concatenate([self._pending, self._next_batch()])

    def take(self, count: int, first_global_index: int) -> np.ndarray:
        while len(self._pending) < count:
            self._pending = np.concatenate([self._pending, self._next_batch()])
        taken, self._pending = self._pending[:count], self._pending[count:]
        return taken

    def close(self) -> None:
        """End the read while Ray is up (a batch generator left to the garbage collector after `ray.shutdown`
        calls its split's coordinator and so starts a new local Ray, which hangs)."""
        if self._batches is not None:
            getattr(self._batches, "close", lambda: None)()
            self._batches = None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        logger.warning("skill %s: a streaming split starts its passes again after a resume (rows are not indexed)",
                       self.skill)  # fmt: skip
