"""The parquet streams of a prepared directory: per-skill token rows read from part files.

Role in the flow: tokens -> **streams** -> the parquet source (`sources/parquet.py`) -> assembly. The
source opens one stream per training skill on every worker; `assembly.BatchAssembler` takes each
step's per-skill counts from them (`take(count, first_global_index) -> token rows`). Nothing here
talks to the sampler actor. The source's options (`data.parquet.*`) arrive in the `SkillSetup`.

* `ParquetSkillStream` (`data.parquet.split=files`, the default): this rank's part files of one
  skill (`part_index % world_size == rank`), read in a seeded order per epoch through a seeded
  shuffle buffer, by one of two interchangeable readers (`PARQUET_READERS`): a Ray Data
  read_parquet -> map_batches pipeline, or pyarrow in the worker (above
  `RAY_DATA_MAX_SKILLS` skills, where hundreds of pipelines would spend the machine starting
  tasks). A skill that runs out starts a new epoch and logs it. Its position (epoch, rows consumed)
  is checkpointed; with another number of workers the skill restarts its current epoch (logged).
* `PositionalParquetSkillStream` (`data.parquet.split=positions`): the skill's rows as one seeded
  sequence addressed by global position, like the generator streams, so runs and resumes do not
  depend on the number of workers; each rank reads the text column forward and tokenizes only its
  own rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from skillit_ray.config.job import JobConfig
from skillit_ray.data.source import SkillSetup
from skillit_ray.data.tokens import encode_texts, epoch_part_order, tokenize_text_batch, window_order

logger = logging.getLogger(__name__)

RAY_DATA_MAX_SKILLS = 32
"""Above this many training skills, `data.parquet.reader=auto` reads parquet with pyarrow in the
worker: hundreds of per-skill Ray Data pipelines per worker spend the machine on task start-up
(200 skills x 2 workers did not finish 30 steps in 15 minutes on 2 cores)."""


def list_parts(directory: Path) -> list[Path]:
    """A skill directory's parquet part files, in name order."""
    return sorted(Path(directory).glob("*.parquet"))


def arrow_batches(paths: list[str], skill: str, tokenize_options: dict[str, Any], batch_rows: int) -> Iterator[dict]:
    """Tokenized batches of exactly `batch_rows` rows (the last may be short), read with pyarrow in this process."""
    import pyarrow.parquet as pq

    text_column = tokenize_options["text_column"]
    pending = np.zeros((0, tokenize_options["sequence_length"]), dtype=np.int32)
    for path in paths:
        try:
            batches = pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=[text_column])
            for record_batch in batches:
                texts = {text_column: np.asarray(record_batch.column(0).to_pylist(), dtype=object)}
                pending = np.concatenate([pending, tokenize_text_batch(texts, **tokenize_options)["input_ids"]])
                while len(pending) >= batch_rows:
                    yield {"input_ids": pending[:batch_rows]}
                    pending = pending[batch_rows:]
        except OSError as error:
            raise ValueError(f"cannot read parquet file {path} of skill {skill!r}: {error}") from error
    if len(pending):
        yield {"input_ids": pending}


def ray_data_batches(paths: list[str], skill: str, tokenize_options: dict[str, Any], batch_rows: int) -> Iterator[dict]:
    """The same batches from a Ray Data read_parquet -> map_batches pipeline (reads and tokenizes in Ray tasks)."""
    import ray.data  # Ray at the edge: only this reader needs it

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # deterministic row order within this rank
    context.enable_progress_bars = False
    try:
        dataset = ray.data.read_parquet(paths).select_columns([tokenize_options["text_column"]])
    except Exception as error:  # pyarrow/Ray raise several types for corrupt files
        raise ValueError(f"cannot read parquet files of skill {skill!r} ({paths[:3]}...): {error}") from error
    dataset = dataset.map_batches(tokenize_text_batch, fn_kwargs=tokenize_options, batch_format="numpy")
    return iter(dataset.iter_batches(batch_size=batch_rows, batch_format="numpy"))


PARQUET_READERS: dict[str, Callable[..., Iterator[dict]]] = {"ray_data": ray_data_batches, "arrow": arrow_batches}
"""`data.parquet.reader` -> reader; without packing both yield the same rows in the same order."""


def resolved_reader(reader: str, num_train_skills: int) -> str:
    """The parquet reader a worker uses: `data.parquet.reader`, with "auto" resolved by the skill count."""
    if reader != "auto":
        return reader
    return "ray_data" if num_train_skills <= RAY_DATA_MAX_SKILLS else "arrow"


class ParquetSkillStream:
    """This rank's part files of one skill, read and tokenized by Ray Data, in a seeded order per epoch."""

    def __init__(
        self,
        setup: SkillSetup,
        skill: str,
        tokenizer,
        config: JobConfig,
        rank: int,
        world_size: int,
    ) -> None:
        self.skill, self.tokenizer, self.rank, self.world_size = skill, tokenizer, rank, world_size
        self.sequence_length = config.data.sequence_length
        self.pack = bool(config.data.pack_sequences)
        self.text_column = setup.options["text_column"]
        self.shuffle_buffer_rows = setup.options["shuffle_buffer_rows"]
        self.seed = config.train.seed
        self.reader = resolved_reader(setup.options["reader"], len(setup.train_skills))
        parts = list_parts(Path(setup.dataset_path) / "train" / skill)
        self.parts = [part for index, part in enumerate(parts) if index % world_size == rank]
        if not self.parts:
            # Fewer part files than ranks: every rank reads all parts and keeps rows row_index % W == rank.
            self.parts, self.row_stride = parts, world_size
            logger.warning(
                "skill %s has %d part files for %d workers; each worker reads all and keeps every %d-th row "
                "(write more parts with `skillit-ray prepare --rows-per-part`)",
                skill, len(parts), world_size, world_size,
            )  # fmt: skip
        else:
            self.row_stride = 1
        self.epoch, self.rows_consumed = 0, 0
        self._iterator = None
        self._buffer = np.zeros((0, self.sequence_length), dtype=np.int32)

    @property
    def _read_batch_rows(self) -> int:
        return max(256, self.shuffle_buffer_rows)

    def _open_epoch(self) -> None:
        order = epoch_part_order(self.seed, self.epoch, len(self.parts))
        paths = [str(self.parts[index]) for index in order]
        options = {
            "tokenizer": self.tokenizer, "text_column": self.text_column,
            "sequence_length": self.sequence_length, "pack": self.pack,
        }  # fmt: skip
        self._iterator = PARQUET_READERS[self.reader](paths, self.skill, options, self._read_batch_rows)
        self._row_counter = 0
        self._shuffle_rng = np.random.default_rng([self.seed, self.epoch, self.rank, 0x5F])

    def _next_rows(self) -> np.ndarray | None:
        try:
            batch = next(self._iterator)
        except StopIteration:
            return None
        except Exception as error:
            raise ValueError(f"reading skill {self.skill!r} from {self.parts[:3]} failed: {error}") from error
        rows = np.asarray(batch["input_ids"], dtype=np.int32)
        if self.row_stride > 1:
            indices = np.arange(self._row_counter, self._row_counter + len(rows))
            rows = rows[indices % self.row_stride == self.rank]
        self._row_counter += len(batch["input_ids"])
        if self.shuffle_buffer_rows:
            rows = rows[self._shuffle_rng.permutation(len(rows))]
        return rows

    def take(self, count: int, first_global_index: int = 0) -> np.ndarray:
        del first_global_index  # parquet positions are per rank
        if self._iterator is None:
            self._open_epoch()
            skip = self.rows_consumed  # resume: skip what this rank already trained on in this epoch
            self.rows_consumed = 0
            if skip:
                self._take_rows(skip)
        return self._take_rows(count)

    def _take_rows(self, count: int) -> np.ndarray:
        chunks, needed = [], count
        empty_epochs = 0
        while needed > 0:
            if len(self._buffer) == 0:
                rows = self._next_rows()
                if rows is None:
                    if self.rows_consumed == 0:
                        empty_epochs += 1
                        if empty_epochs > 1:
                            raise ValueError(
                                f"skill {self.skill!r} yields no rows on rank {self.rank} "
                                f"(files {[str(p) for p in self.parts[:3]]}); check that its shards are not empty"
                            )
                    logger.info(
                        "skill %s: epoch %d exhausted on rank %d after %d rows; starting epoch %d",
                        self.skill, self.epoch, self.rank, self.rows_consumed, self.epoch + 1,
                    )  # fmt: skip
                    self.epoch += 1
                    self.rows_consumed = 0
                    self._open_epoch()
                    continue
                self._buffer = rows
                continue
            taken = self._buffer[:needed]
            self._buffer = self._buffer[needed:]
            chunks.append(taken)
            needed -= len(taken)
            self.rows_consumed += len(taken)
        return np.concatenate(chunks) if chunks else np.zeros((0, self.sequence_length), dtype=np.int32)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "rows_consumed": self.rows_consumed, "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("world_size") != self.world_size:
            logger.warning(
                "skill %s: checkpoint was written with %s workers, now %d; restarting epoch %d under the new split",
                self.skill, state.get("world_size"), self.world_size, state.get("epoch", 0),
            )  # fmt: skip
            self.epoch, self.rows_consumed = int(state.get("epoch", 0)), 0
        else:
            self.epoch, self.rows_consumed = int(state["epoch"]), int(state["rows_consumed"])
        self._iterator = None
        self._buffer = np.zeros((0, self.sequence_length), dtype=np.int32)


class PositionalParquetSkillStream:
    """A parquet skill addressed by global position, so any worker count reads the same rows.

    Position g of the skill is row g % n of epoch g // n (n = the skill's rows). An epoch is the
    part files in a seeded order (seed, epoch), rows in file order, permuted within consecutive
    windows of `data.parquet.shuffle_buffer_rows` rows by (seed, epoch, window). A rank's positions only
    grow, so each rank reads the text column forward once per epoch (pyarrow, in this process),
    keeps the current window, and tokenizes just the rows it was dealt. Nothing per rank needs
    checkpointing: the assembler's global positions say where every skill is.
    """

    def __init__(self, setup: SkillSetup, skill: str, tokenizer, config: JobConfig) -> None:
        import pyarrow.parquet as pq

        self.skill, self.tokenizer = skill, tokenizer
        self.sequence_length, self.text_column = config.data.sequence_length, setup.options["text_column"]
        self.seed, self.window_rows = config.train.seed, max(1, setup.options["shuffle_buffer_rows"])
        self.parts = list_parts(Path(setup.dataset_path) / "train" / skill)
        self.num_rows = sum(pq.read_metadata(str(part)).num_rows for part in self.parts)
        self.epoch, self._texts, self._next_window = -1, None, 0
        self._window: tuple[int, int, list[str]] | None = None  # (epoch, window index, permuted texts)

    def _epoch_texts(self, epoch: int):
        import pyarrow.parquet as pq

        order = epoch_part_order(self.seed, epoch, len(self.parts))
        for index in order:
            for batch in pq.ParquetFile(str(self.parts[index])).iter_batches(columns=[self.text_column]):
                yield from (str(text) for text in batch.column(0).to_pylist())

    def _window_texts(self, epoch: int, window_index: int) -> list[str]:
        if self._window is not None and self._window[:2] == (epoch, window_index):
            return self._window[2]
        if epoch != self.epoch or window_index < self._next_window:
            if epoch != self.epoch and epoch > 0:
                logger.info("skill %s: starting epoch %d (%d rows per epoch)", self.skill, epoch, self.num_rows)
            self.epoch, self._texts, self._next_window = epoch, self._epoch_texts(epoch), 0
        while True:
            size = min(self.window_rows, self.num_rows - self._next_window * self.window_rows)
            texts = [next(self._texts) for _ in range(size)]
            self._next_window += 1
            if self._next_window - 1 == window_index:
                break
        order = window_order(self.seed, epoch, window_index, len(texts))
        self._window = (epoch, window_index, [texts[position] for position in order])
        return self._window[2]

    def take(self, count: int, first_global_index: int) -> np.ndarray:
        texts = []
        for position in range(first_global_index, first_global_index + count):
            epoch, offset = divmod(position, self.num_rows)
            texts.append(self._window_texts(epoch, offset // self.window_rows)[offset % self.window_rows])
        return encode_texts(self.tokenizer, texts, self.sequence_length)

    def state_dict(self) -> dict[str, Any]:
        return {}  # positions are global and kept by the assembler

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
