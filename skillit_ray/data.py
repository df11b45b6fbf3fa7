"""Per-skill data streams and batch assembly from exact quotas.

Role in the flow: config -> skills -> **data** -> sampler/train. Every training worker owns one
stream per training skill and, at each step, takes exactly its per-skill counts (from
`mixture.step_rank_quotas`) from those streams, then shuffles them into one batch. Nothing here
talks to the sampler actor: the counts are a pure function of (weights, seed, round, step, rank).

Three kinds of stream, one interface (`take(count, first_global_index) -> token rows`):

* `GeneratorSkillStream` (data.path empty, LEGO/addition): fresh samples every round, as the paper
  draws them. Sample number i of a skill is a pure function of (seed, skill, i), and each rank takes
  a disjoint slice of the global positions of the step, so the global batch, and therefore the run,
  does not depend on the number of workers.
* `ParquetSkillStream` (data.path set, `data.parquet_split=files`, the default): a Ray Data pipeline
  per skill on each worker
  (`read_parquet` of this rank's part files -> `map_batches` tokenization), read in a seeded order
  per epoch through a seeded shuffle buffer. Each pipeline costs Ray tasks and processes, so above
  `RAY_DATA_MAX_SKILLS` training skills (`data.parquet_reader=auto`) the same files are read with
  pyarrow inside the worker instead, in identical fixed-size batches, so (without packing) both
  readers yield the same rows in the same order. Part files are dealt to ranks round-robin
  (`part_index % world_size == rank`), so ranks read disjoint data without coordination. A skill
  that runs out starts a new epoch and logs it. Its position (epoch, rows consumed) is checkpointed;
  resuming with the same number of workers continues exactly, with a different number the skill
  restarts its current epoch under the new split (logged).
* `PositionalParquetSkillStream` (`data.parquet_split=positions`): the skill's rows as one seeded
  sequence addressed by global position, like the generator streams, so runs and resumes do not
  depend on the number of workers. Each rank reads the text column forward (pyarrow) and tokenizes
  only its own rows; reading, not tokenizing, is repeated on every rank.

Tokens: synthetic samples are trained on the whole sentence (prompt + answer, as the official code)
padded to `data.sequence_length`; padding positions get label -100. Text rows are truncated and
padded the same way, or packed (EOS-separated) when `data.pack_sequences` is true.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skillit_ray.config import JobConfig
from skillit_ray.mixture import resolve_eval_skills
from skillit_ray.skills import Sample, get_skill_generator
from skillit_ray.skills.tokenizer import build_tokenizer, load_tokenizer

logger = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
PAD_LABEL = -100
RAY_DATA_MAX_SKILLS = 32
"""Above this many training skills, `data.parquet_reader=auto` reads parquet with pyarrow in the
worker: hundreds of per-skill Ray Data pipelines per worker spend the machine on task start-up
(200 skills x 2 workers did not finish 30 steps in 15 minutes on 2 cores)."""


# ----------------------------------------------------------------------------- which skills


@dataclass
class SkillSetup:
    """Resolved skill lists and where their data lives; the same on the driver and every worker."""

    source: str
    train_skills: list[str]
    eval_skills: list[str]
    all_skills: list[str]
    dataset_path: str = ""
    tokenizer_path: str = ""
    generator_options: dict[str, Any] = field(default_factory=dict)

    @property
    def uses_generator(self) -> bool:
        return not self.dataset_path

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SkillSetup:
        return cls(**values)


def generator_options(config: JobConfig) -> dict[str, Any]:
    if config.data.source == "lego":
        return {
            "num_variables": config.data.lego_num_variables,
            "num_validation_samples": config.data.num_val_per_skill,
        }
    return {"num_digits": config.data.addition_num_digits, "num_validation_samples": config.data.num_val_per_skill}


def read_manifest(dataset_path: str) -> dict[str, Any]:
    """The manifest written by `skillit-ray prepare`; clear error when it is missing or broken."""
    manifest_path = Path(dataset_path) / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ValueError(
            f"data.path={dataset_path} has no {MANIFEST_FILE}; write the dataset with "
            "`skillit-ray prepare lego|addition --out DIR` or add a manifest listing the skills"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{manifest_path} is not valid JSON ({error}); re-run `skillit-ray prepare`") from error
    if not isinstance(manifest.get("skills"), list) or not manifest["skills"]:
        raise ValueError(f"{manifest_path} must list the skills under the key 'skills'")
    return manifest


def resolve_skills(config: JobConfig) -> SkillSetup:
    """Training and evaluation skills in graph order, checked against what the data offers."""
    data = config.data
    if data.path:
        manifest = read_manifest(data.path)
        available = list(manifest["skills"])
        tokenizer_path = data.tokenizer_path or str(Path(data.path) / manifest.get("tokenizer", "tokenizer"))
        source = manifest.get("source", data.source)
    else:
        if data.source == "parquet":
            raise ValueError("data.source=parquet needs data.path")
        available = get_skill_generator(data.source, **generator_options(config)).skill_names
        tokenizer_path = data.tokenizer_path
        source = data.source
    train_skills = list(data.train_skills) or list(available)
    candidates = train_skills + list(data.eval_skills) + list(config.mixture.target_skills)
    unknown = [name for name in candidates if name not in available]
    if unknown:
        raise ValueError(
            f"skill(s) {unknown} named in the config are not in the data; available skills: {available}. "
            "Fix data.train_skills / data.eval_skills / mixture.target_skills"
        )
    eval_skills = resolve_eval_skills(
        config.mixture.setting, train_skills, list(data.eval_skills), list(config.mixture.target_skills)
    )
    if data.path:
        for split, names in (("train", train_skills), ("val", eval_skills)):
            for name in names:
                check_parquet_skill(Path(data.path) / split / name, name, split, data.text_column)
    return SkillSetup(
        source=source,
        train_skills=train_skills,
        eval_skills=eval_skills,
        all_skills=available,
        dataset_path=data.path,
        tokenizer_path=tokenizer_path,
        generator_options=generator_options(config) if source in ("lego", "addition") else {},
    )


def list_parts(directory: Path) -> list[Path]:
    return sorted(Path(directory).glob("*.parquet"))


def check_parquet_skill(directory: Path, skill: str, split: str, text_column: str) -> None:
    """Fail before any cluster work when a skill's shards are missing, empty, corrupt or lack the column."""
    import pyarrow.parquet as pq

    parts = list_parts(directory) if directory.is_dir() else []
    if not parts:
        raise ValueError(
            f"skill {skill!r} has no parquet files in {directory}; every skill needs "
            f"{split}/<skill>/part-*.parquet (re-run `skillit-ray prepare` or fix data.path)"
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
                f"{part} has columns {columns} but no {text_column!r}; set data.text_column to the text column"
            )
        total_rows += metadata.num_rows
    if total_rows == 0:
        raise ValueError(f"skill {skill!r} has only empty parquet files in {directory}; it needs at least one row")


def load_skill_tokenizer(setup: SkillSetup):
    """A local tokenizer: the dataset's / configured directory, else built from the generator vocabulary."""
    if setup.tokenizer_path:
        if not Path(setup.tokenizer_path).is_dir():
            raise ValueError(f"tokenizer directory {setup.tokenizer_path} does not exist; set data.tokenizer_path")
        return load_tokenizer(setup.tokenizer_path)
    generator = get_skill_generator(setup.source, **setup.generator_options)
    return build_tokenizer(generator.vocabulary())


# ----------------------------------------------------------------------------- tokenization


def encode_texts(tokenizer, texts: list[str], sequence_length: int, pack: bool = False) -> np.ndarray:
    """Token rows of exactly `sequence_length` ids (int32), padded with the pad id.

    pack=False: one text per row, truncated. pack=True: texts joined with EOS and cut into full rows
    (the last partial row is padded).
    """
    pad_id = tokenizer.pad_token_id
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    if pack:
        stream: list[int] = []
        for ids in encoded:
            stream.extend(ids)
            stream.append(tokenizer.eos_token_id)
        num_rows = max(1, -(-len(stream) // sequence_length))
        rows = np.full((num_rows, sequence_length), pad_id, dtype=np.int32)
        flat = np.asarray(stream, dtype=np.int32)
        rows.reshape(-1)[: flat.size] = flat
        return rows
    rows = np.full((len(encoded), sequence_length), pad_id, dtype=np.int32)
    for row, ids in enumerate(encoded):
        ids = ids[:sequence_length]
        rows[row, : len(ids)] = ids
    return rows


def labels_for(input_ids: np.ndarray, pad_id: int) -> np.ndarray:
    """Causal-LM labels: the inputs with padding masked (the model shifts them)."""
    labels = input_ids.astype(np.int64).copy()
    labels[input_ids == pad_id] = PAD_LABEL
    return labels


def epoch_part_order(seed: int, epoch: int, num_parts: int) -> np.ndarray:
    """The seeded order in which a skill's part files are read in one epoch (both parquet streams)."""
    return np.random.default_rng([seed, epoch, 0xDA7A]).permutation(num_parts)


def shuffle_batch_rows(rows: np.ndarray, seed: int, step: int, rank: int) -> np.ndarray:
    """This rank's batch rows in a seeded order, so skills are mixed within the batch."""
    return rows[np.random.default_rng([seed, step, rank, 0xBA7C]).permutation(len(rows))]


def samples_from_table(table, skill: str) -> list[Sample]:
    """Prompt/answer(/suffix) rows of a parquet table (as `skillit-ray prepare` writes them) as Samples."""
    columns = set(table.column_names)
    prompts, answers = table.column("prompt").to_pylist(), table.column("answer").to_pylist()
    suffixes = table.column("suffix").to_pylist() if "suffix" in columns else [""] * table.num_rows
    return [
        Sample(skill=skill, prompt=prompt, answer=answer, suffix=suffix)
        for prompt, answer, suffix in zip(prompts, answers, suffixes)
    ]


# ----------------------------------------------------------------------------- streams


class GeneratorSkillStream:
    """Fresh synthetic samples; sample i of the skill depends only on (seed, skill, i)."""

    def __init__(self, setup: SkillSetup, skill: str, tokenizer, sequence_length: int, seed: int) -> None:
        self.generator = get_skill_generator(setup.source, **setup.generator_options)
        self.skill_index = self.generator.skill_names.index(skill)
        self.tokenizer, self.sequence_length, self.seed = tokenizer, sequence_length, seed

    def take(self, count: int, first_global_index: int) -> np.ndarray:
        samples = [
            self.generator.sample_by_index(self.skill_index, first_global_index + offset, self.seed)
            for offset in range(count)
        ]
        return encode_texts(self.tokenizer, [sample.text for sample in samples], self.sequence_length)

    def state_dict(self) -> dict[str, Any]:
        return {}  # positions are global and kept by the assembler

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def _tokenize_batch(batch: dict[str, np.ndarray], tokenizer, text_column: str, sequence_length: int, pack: bool):
    texts = [str(text) for text in batch[text_column]]
    return {"input_ids": encode_texts(tokenizer, texts, sequence_length, pack)}


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
        self.pack = config.data.pack_sequences
        self.text_column = config.data.text_column
        self.shuffle_buffer_rows = config.data.shuffle_buffer_rows
        self.seed = config.train.seed
        reader = config.data.parquet_reader
        if reader == "auto":
            reader = "ray_data" if len(setup.train_skills) <= RAY_DATA_MAX_SKILLS else "arrow"
        self.reader = reader
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
        self._iterator = self._ray_data_batches(paths) if self.reader == "ray_data" else self._arrow_batches(paths)
        self._row_counter = 0
        self._shuffle_rng = np.random.default_rng([self.seed, self.epoch, self.rank, 0x5F])

    def _arrow_batches(self, paths: list[str]):
        """Tokenized batches of exactly `_read_batch_rows` rows (the last may be short), read in this process."""
        import pyarrow.parquet as pq

        pending = np.zeros((0, self.sequence_length), dtype=np.int32)
        for path in paths:
            try:
                parquet_file = pq.ParquetFile(path)
                batches = parquet_file.iter_batches(batch_size=self._read_batch_rows, columns=[self.text_column])
                for record_batch in batches:
                    texts = {self.text_column: np.asarray(record_batch.column(0).to_pylist(), dtype=object)}
                    rows = _tokenize_batch(texts, self.tokenizer, self.text_column, self.sequence_length, self.pack)
                    pending = np.concatenate([pending, rows["input_ids"]])
                    while len(pending) >= self._read_batch_rows:
                        yield {"input_ids": pending[: self._read_batch_rows]}
                        pending = pending[self._read_batch_rows :]
            except OSError as error:
                raise ValueError(f"cannot read parquet file {path} of skill {self.skill!r}: {error}") from error
        if len(pending):
            yield {"input_ids": pending}

    def _ray_data_batches(self, paths: list[str]):
        import ray.data  # Ray at the edge: only parquet streams need it

        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # deterministic row order within this rank
        context.enable_progress_bars = False
        try:
            dataset = ray.data.read_parquet(paths).select_columns([self.text_column])
        except Exception as error:  # pyarrow/Ray raise several types for corrupt files
            raise ValueError(f"cannot read parquet files of skill {self.skill!r} ({paths[:3]}...): {error}") from error
        dataset = dataset.map_batches(
            _tokenize_batch,
            fn_kwargs={
                "tokenizer": self.tokenizer,
                "text_column": self.text_column,
                "sequence_length": self.sequence_length,
                "pack": self.pack,
            },
            batch_format="numpy",
        )
        return iter(dataset.iter_batches(batch_size=self._read_batch_rows, batch_format="numpy"))

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
    windows of `data.shuffle_buffer_rows` rows by (seed, epoch, window). A rank's positions only
    grow, so each rank reads the text column forward once per epoch (pyarrow, in this process),
    keeps the current window, and tokenizes just the rows it was dealt. Nothing per rank needs
    checkpointing: the assembler's global positions say where every skill is.
    """

    def __init__(self, setup: SkillSetup, skill: str, tokenizer, config: JobConfig) -> None:
        import pyarrow.parquet as pq

        self.skill, self.tokenizer = skill, tokenizer
        self.sequence_length, self.text_column = config.data.sequence_length, config.data.text_column
        self.seed, self.window_rows = config.train.seed, max(1, config.data.shuffle_buffer_rows)
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
        order = np.random.default_rng([self.seed, epoch, window_index, 0x5F]).permutation(len(texts))
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


class BatchAssembler:
    """Builds this rank's batch for a step from the per-rank, per-skill counts of that step."""

    def __init__(self, config: JobConfig, setup: SkillSetup, tokenizer, rank: int, world_size: int) -> None:
        self.rank, self.world_size, self.seed = rank, world_size, config.train.seed
        self.skills = setup.train_skills
        self.sequence_length = config.data.sequence_length
        self.pad_id = tokenizer.pad_token_id
        self.config, self.setup, self.tokenizer = config, setup, tokenizer
        self.streams: dict[str, Any] = {}  # opened lazily: a skill with weight 0 is never read
        self.global_positions = np.zeros(len(self.skills), dtype=np.int64)
        self._pending_stream_states: dict[str, Any] = {}

    def _new_stream(self, skill: str):
        if self.setup.uses_generator:
            return GeneratorSkillStream(self.setup, skill, self.tokenizer, self.sequence_length, self.seed)
        if self.config.data.parquet_split == "positions":
            return PositionalParquetSkillStream(self.setup, skill, self.tokenizer, self.config)
        return ParquetSkillStream(self.setup, skill, self.tokenizer, self.config, self.rank, self.world_size)

    def _stream(self, skill: str):
        if skill not in self.streams:
            stream = self._new_stream(skill)
            if skill in self._pending_stream_states:
                stream.load_state_dict(self._pending_stream_states.pop(skill))
            self.streams[skill] = stream
        return self.streams[skill]

    def next_batch(self, counts_by_rank: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids [n, L], per-skill counts actually placed) for this rank at `step`."""
        rows, achieved = [], np.zeros(len(self.skills), dtype=np.int64)
        for skill_index, skill in enumerate(self.skills):
            count = int(counts_by_rank[self.rank, skill_index])
            if count:
                first = int(self.global_positions[skill_index] + counts_by_rank[: self.rank, skill_index].sum())
                taken = self._stream(skill).take(count, first)
                rows.append(taken)
                achieved[skill_index] = len(taken)
            self.global_positions[skill_index] += int(counts_by_rank[:, skill_index].sum())
        batch = np.concatenate(rows) if rows else np.zeros((0, self.sequence_length), dtype=np.int32)
        return shuffle_batch_rows(batch, self.seed, step, self.rank), achieved

    def state_dict(self) -> dict[str, Any]:
        streams = {skill: stream.state_dict() for skill, stream in self.streams.items()}
        streams.update(self._pending_stream_states)
        return {"global_positions": self.global_positions.tolist(), "streams": streams}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.global_positions = np.asarray(state["global_positions"], dtype=np.int64)
        self.streams = {}
        self._pending_stream_states = dict(state.get("streams", {}))


# ----------------------------------------------------------------------------- curriculum pool


class CurriculumPool:
    """The fixed, scored sample pool of the sample-level (anti)curriculum (official `curriculum_trainer`).

    Position p of the pool is sample number `within_skill[p]` of skill `skills[p]`; the skill mix is
    `mixture.curriculum_pool_skills` of the strategy's proportions (the imbalanced Random pool).
    Generator data: the sample is drawn on demand from (seed, skill, index), like the streams.
    Parquet data: the first rows of each skill's train part files in file order (cycled when a skill
    has fewer rows than its share), held in memory, since a curriculum needs random access to the
    pool. The initial model's loss of every position (`skillit_ray.evaluate.score_pool`) orders it.
    """

    def __init__(self, setup: SkillSetup, tokenizer, config: JobConfig, pool_skills: np.ndarray) -> None:
        self.setup, self.tokenizer, self.config = setup, tokenizer, config
        self.skills = np.asarray(pool_skills, dtype=np.int64)
        self.within_skill = np.zeros(self.skills.size, dtype=np.int64)
        for skill_index in range(len(setup.train_skills)):
            positions = np.flatnonzero(self.skills == skill_index)
            self.within_skill[positions] = np.arange(positions.size)
        self.losses: np.ndarray | None = None  # set by scoring or by a checkpoint
        if setup.uses_generator:
            self.generator = get_skill_generator(setup.source, **setup.generator_options)
            self.generator_indices = [self.generator.skill_names.index(name) for name in setup.train_skills]
        else:
            self.rows_by_skill = [
                self._read_parquet_rows(name, int((self.skills == index).sum()))
                for index, name in enumerate(setup.train_skills)
            ]

    def __len__(self) -> int:
        return int(self.skills.size)

    @property
    def has_answers(self) -> bool:
        """Whether pool items are prompt/answer samples (scored by answer-token loss) or plain texts."""
        return self.setup.uses_generator or isinstance(self.rows_by_skill[0][0], Sample)

    def _read_parquet_rows(self, skill: str, count: int) -> list:
        import pyarrow.parquet as pq

        rows: list = []
        for part in list_parts(Path(self.setup.dataset_path) / "train" / skill):
            table = pq.read_table(str(part))
            if {"prompt", "answer"} <= set(table.column_names):
                rows.extend(samples_from_table(table, skill))
            else:
                rows.extend(str(text) for text in table.column(self.config.data.text_column).to_pylist())
            if len(rows) >= count:
                break
        if len(rows) < count:
            logger.info(
                "curriculum pool: skill %s has %d rows for a share of %d; cycling them", skill, len(rows), count
            )
        return [rows[index % len(rows)] for index in range(count)] if rows else []

    def items(self, positions) -> list:
        """Samples (with answers) or texts at these pool positions."""
        items = []
        for position in positions:
            skill_index, index = int(self.skills[position]), int(self.within_skill[position])
            if self.setup.uses_generator:
                items.append(
                    self.generator.sample_by_index(self.generator_indices[skill_index], index, self.config.train.seed)
                )
            else:
                items.append(self.rows_by_skill[skill_index][index])
        return items

    def token_rows(self, positions) -> np.ndarray:
        """Training rows (whole sentence, padded) for these pool positions."""
        texts = [item.text if isinstance(item, Sample) else item for item in self.items(positions)]
        return encode_texts(self.tokenizer, texts, self.config.data.sequence_length)

    def batch(self, positions: np.ndarray, step: int, rank: int) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, per-skill counts) for this rank's pool positions at `step`, shuffled like any batch."""
        rows = shuffle_batch_rows(self.token_rows(positions), self.config.train.seed, step, rank)
        return rows, self.skill_counts(positions)

    def skill_counts(self, positions: np.ndarray) -> np.ndarray:
        """Per-training-skill number of samples at these pool positions."""
        return np.bincount(self.skills[positions], minlength=len(self.setup.train_skills)).astype(np.int64)


# ----------------------------------------------------------------------------- validation sets


@dataclass
class ValidationSet:
    """One evaluation skill's held-out data: synthetic samples (answer-token loss, accuracy) or token rows."""

    skill: str
    samples: list[Sample] | None = None
    token_rows: np.ndarray | None = None


def load_validation_sets(config: JobConfig, setup: SkillSetup, tokenizer) -> list[ValidationSet]:
    """Fixed validation data per evaluation skill (the same on every worker and every run)."""
    sets = []
    if setup.uses_generator:
        generator = get_skill_generator(setup.source, **setup.generator_options)
        for skill in setup.eval_skills:
            index = generator.skill_names.index(skill)
            sets.append(ValidationSet(skill, samples=generator.validation_set(index, config.data.num_val_per_skill)))
        return sets
    import pyarrow.parquet as pq

    for skill in setup.eval_skills:
        parts = list_parts(Path(setup.dataset_path) / "val" / skill)
        try:
            table = pq.read_table([str(part) for part in parts]) if len(parts) > 1 else pq.read_table(str(parts[0]))
        except Exception as error:
            raise ValueError(
                f"cannot read validation parquet of skill {skill!r} in {parts[0].parent}: {error}"
            ) from error
        table = table.slice(0, config.data.num_val_per_skill)
        columns = set(table.column_names)
        if {"prompt", "answer"} <= columns:
            sets.append(ValidationSet(skill, samples=samples_from_table(table, skill)))
        elif config.data.text_column in columns:
            texts = [str(text) for text in table.column(config.data.text_column).to_pylist()]
            sets.append(ValidationSet(skill, token_rows=encode_texts(tokenizer, texts, config.data.sequence_length)))
        else:
            raise ValueError(
                f"validation parquet of skill {skill!r} has columns {sorted(columns)}; it needs "
                f"data.text_column={config.data.text_column!r} (or prompt + answer)"
            )
    return sets
