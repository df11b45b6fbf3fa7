"""The sample-level (anti)curriculum: its pool, its scoring by the initial model, its pacing, its plan.

Role in the flow: mixture (`strategies/curriculum.py`: the pool's composition, the pacing) -> **curriculum**
-> round plan (`plans.py`) -> train loop. The official
curriculum trainer (reference section 2) scores a fixed pool of samples, drawn in the Random
proportions, with the initial model, sorts it easy -> hard (or hard -> easy), and lets round r draw
without replacement from the first (r + 1) / M of that order. Here:

* `CurriculumPool`: position p is item `within_skill[p]` of skill `skills[p]`, read through the run's
  source (`SkillSource.pool_reader`: generated on demand, or the first rows of a parquet skill or token
  store); with `data.pack_sequences` a text skill's items are packed rows of its first documents, the
  row format training reads, so the curriculum's result measures the order, not the format;
* `score_pool`: every position's loss under the initial model (answer-token loss for synthetic
  samples, mean token loss for texts), ranks scoring fixed chunks and all-reducing, so the order
  does not depend on the worker count;
* `curriculum_schedules`: each round's pool positions (`quotas.curriculum_round_indices`);
* `CurriculumPlan`: the round-plan interface of `plans.py` over all of it; the scores are its part of
  every checkpoint (`curriculum_losses.pt`).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from skillit_ray.config.job import JobConfig
from skillit_ray.data.source import SkillSetup
from skillit_ray.data.sources.registry import source_for
from skillit_ray.data.tokens import encode_texts, shuffle_batch_rows
from skillit_ray.mixture.quotas import rank_row_range
from skillit_ray.mixture.registry import strategy_class, strategy_options
from skillit_ray.mixture.strategies.curriculum import curriculum_pool_skills, curriculum_round_indices
from skillit_ray.skills.base import Sample
from skillit_ray.skills.evaluate import answer_token_losses
from skillit_ray.train import distributed
from skillit_ray.train.model import sequence_losses
from skillit_ray.train.parallel import is_sharded

POOL_SCORING_CHUNK = 64
"""Pool samples per forward when scoring a curriculum pool; chunk c goes to rank c % world_size, so a
sample is always scored in the same batch, whatever the number of workers."""
CURRICULUM_LOSSES_FILE = "curriculum_losses.pt"


class CurriculumPool:
    """The fixed, scored sample pool of the sample-level (anti)curriculum (official `curriculum_trainer`)."""

    def __init__(self, setup: SkillSetup, tokenizer, config: JobConfig, pool_skills: np.ndarray) -> None:
        self.setup, self.tokenizer, self.config = setup, tokenizer, config
        self.skills = np.asarray(pool_skills, dtype=np.int64)
        self.within_skill = np.zeros(self.skills.size, dtype=np.int64)
        for skill_index in range(len(setup.train_skills)):
            positions = np.flatnonzero(self.skills == skill_index)
            self.within_skill[positions] = np.arange(positions.size)
        self.losses: np.ndarray | None = None  # set by scoring or by a checkpoint
        source = source_for(setup)
        counts = [int((self.skills == index).sum()) for index in range(len(setup.train_skills))]
        self.readers = [source.pool_reader(name, count, config) for name, count in zip(setup.train_skills, counts)]
        if config.data.pack_sequences and counts and not isinstance(self.items([0])[0], (Sample, np.ndarray)):
            self.readers = [self.packed_reader(source, name, count) for name, count in zip(setup.train_skills, counts)]

    def packed_reader(self, source, skill: str, count: int, max_documents_per_row: int = 8):
        """Pool items as training sees them when it packs text: the skill's first documents joined with EOS
        and cut into full rows (not one document per row, which would make the pool's rows another format
        than the training rows the curriculum's result is compared with)."""
        documents = count
        while True:
            reader = source.pool_reader(skill, documents, self.config)
            texts = [str(reader(index)) for index in range(documents)]
            rows = encode_texts(self.tokenizer, texts, self.config.data.sequence_length, pack=True)
            if len(rows) >= count or documents >= count * max_documents_per_row:
                return lambda index: rows[index % len(rows)]
            documents *= 2

    def __len__(self) -> int:
        return int(self.skills.size)

    @property
    def has_answers(self) -> bool:
        """Whether pool items are prompt/answer samples (scored by answer-token loss) or plain texts."""
        return isinstance(self.items([0])[0], Sample)

    def items(self, positions) -> list:
        """Samples (with answers), texts or token rows at these pool positions."""
        return [self.readers[int(self.skills[p])](int(self.within_skill[p])) for p in positions]

    def token_rows(self, positions) -> np.ndarray:
        """Training rows (whole sentence, padded) for these pool positions."""
        items = self.items(positions)
        if items and isinstance(items[0], np.ndarray):  # a source of stored token rows
            return np.stack(items).astype(np.int32)
        texts = [item.text if isinstance(item, Sample) else item for item in items]
        return encode_texts(self.tokenizer, texts, self.config.data.sequence_length)

    def batch(self, positions: np.ndarray, step: int, rank: int) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, per-skill counts) for this rank's pool positions at `step`, shuffled like any batch."""
        rows = shuffle_batch_rows(self.token_rows(positions), self.config.train.seed, step, rank)
        return rows, self.skill_counts(positions)

    def skill_counts(self, positions: np.ndarray) -> np.ndarray:
        """Per-training-skill number of samples at these pool positions."""
        return np.bincount(self.skills[positions], minlength=len(self.setup.train_skills)).astype(np.int64)

    def state_dict(self) -> torch.Tensor:
        return torch.as_tensor(self.losses, dtype=torch.float64)

    def load_state_dict(self, losses: torch.Tensor) -> None:
        self.losses = losses.numpy()


@torch.no_grad()
def score_pool(
    model: torch.nn.Module,
    tokenizer,
    pool: CurriculumPool,
    context: distributed.WorkerContext,
    autocast_bf16: bool = False,
) -> np.ndarray:
    """Per-sample loss of every pool position under `model`, identical on every rank (float64).

    Answer-token loss for synthetic samples, mean token loss for texts (what the official curriculum
    trainer sorts by). Ranks score fixed chunks and the results are all-reduced.
    """
    was_training = model.training
    model.eval()
    losses = torch.zeros(len(pool), dtype=torch.float64)
    every_chunk = is_sharded(model)  # FSDP2: every rank runs the same forward passes, so each scores it all
    for chunk_index, start in enumerate(range(0, len(pool), POOL_SCORING_CHUNK)):
        if chunk_index % context.world_size != context.rank and not every_chunk:
            continue
        positions = np.arange(start, min(start + POOL_SCORING_CHUNK, len(pool)))
        with torch.autocast(device_type=context.device.type, dtype=torch.bfloat16, enabled=autocast_bf16):
            if pool.has_answers:
                chunk_losses = answer_token_losses(
                    model, tokenizer, pool.items(positions), context.device, batch_size=POOL_SCORING_CHUNK
                )
            else:
                rows = pool.token_rows(positions)
                chunk_losses = sequence_losses(model, rows, tokenizer.pad_token_id, context.device, autocast_bf16)
        losses[positions] = torch.as_tensor(chunk_losses, dtype=torch.float64)
    if not every_chunk:
        distributed.all_reduce_sum(losses)
    if was_training:
        model.train()
    return losses.numpy()


def build_curriculum_pool(config: JobConfig, setup: SkillSetup, tokenizer, proportions: list[float]) -> CurriculumPool:
    """The pool of a sample-level (anti)curriculum run, drawn in `proportions` (unscored until step 0)."""
    pool_size = strategy_options(config).pool_size or config.train.steps * config.train.batch_size
    return CurriculumPool(setup, tokenizer, config, curriculum_pool_skills(proportions, pool_size, config.train.seed))


def curriculum_schedules(config: JobConfig, pool: CurriculumPool) -> list[np.ndarray]:
    """Pool positions each round trains on, in order (pacing of `curriculum_round_indices`)."""
    train, mixture = config.train, config.mixture
    round_bounds = [train.steps_in_round(round_index, mixture.num_rounds) for round_index in range(mixture.num_rounds)]
    round_lengths = [end - start for start, end in round_bounds]
    selections = curriculum_round_indices(
        pool.losses,
        num_rounds=mixture.num_rounds,
        samples_per_round=max(round_lengths) * train.batch_size,
        num_epochs=strategy_options(config).num_epochs,
        seed=train.seed,
        anticurriculum=strategy_class(mixture.strategy).sample_order == "hard_first",
    )
    return [selection[: length * train.batch_size] for selection, length in zip(selections, round_lengths)]


class CurriculumPlan:
    """Round plan of a sample-level curriculum: each round's paced positions of the scored pool."""

    def __init__(self, config: JobConfig, pool: CurriculumPool, context: distributed.WorkerContext) -> None:
        self.config, self.pool, self.context = config, pool, context
        self.schedules: list[np.ndarray] | None = None

    def prepare(self, model: torch.nn.Module, autocast_bf16: bool) -> None:
        """Score the pool with the initial model unless a checkpoint restored the scores; pace the rounds."""
        if self.pool.losses is None:
            started = time.perf_counter()
            self.pool.losses = score_pool(model, self.pool.tokenizer, self.pool, self.context, autocast_bf16)
            distributed.log_rank0(
                self.context, "curriculum: scored %d pool samples with the initial model in %.1f s",
                len(self.pool), time.perf_counter() - started,
            )  # fmt: skip
        self.schedules = curriculum_schedules(self.config, self.pool)

    def schedule(self, round_index: int, weights: list[float], seed: int) -> np.ndarray:
        return self.schedules[round_index]

    def _rank_positions(self, schedule: np.ndarray, step_in_round: int) -> np.ndarray:
        batch_size = self.config.train.batch_size
        step_entries = schedule[step_in_round * batch_size :][:batch_size]
        first, last = rank_row_range(len(step_entries), self.context.world_size, self.context.rank)
        return step_entries[first:last]

    def step_counts(self, schedule: np.ndarray, step_in_round: int) -> np.ndarray:
        return self.pool.skill_counts(self._rank_positions(schedule, step_in_round))

    def batch(self, schedule: np.ndarray, step_in_round: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        return self.pool.batch(self._rank_positions(schedule, step_in_round), step, self.context.rank)

    def checkpoint_parts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {CURRICULUM_LOSSES_FILE: self.pool}, {}
