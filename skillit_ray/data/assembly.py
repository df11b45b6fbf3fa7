"""Batch assembly: this rank's batch of a step from its exact per-skill counts.

Role in the flow: sources/streams -> **assembly** -> round plan (`plans.QuotaPlan`) -> train step.
Every worker owns one stream per training skill, opened lazily from the run's source (a skill with
weight 0 is never read). At each step `BatchAssembler.next_batch` takes exactly this rank's
per-skill counts (`quotas.split_quotas_across_ranks`) from those streams and shuffles them into one
batch. Each skill's global position advances by the whole step's count on every rank, so rank r
reads the disjoint slice after ranks 0..r-1, with no communication. The positions (and parquet
streams' epochs) are the data part of a checkpoint.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from skillit_ray.config.job import JobConfig
from skillit_ray.data.ray_datasets import SPLIT_SHUFFLE_ROWS, SplitStream
from skillit_ray.data.source import SkillSetup
from skillit_ray.data.sources.registry import source_for
from skillit_ray.data.tokens import shuffle_batch_rows


class BatchAssembler:
    """Builds this rank's batch for a step from the per-rank, per-skill counts of that step."""

    def __init__(
        self, config: JobConfig, setup: SkillSetup, tokenizer, rank: int, world_size: int, splits: dict | None = None
    ) -> None:
        """`splits`: per-skill Ray Data iterators (this rank's `streaming_split` of each skill's dataset) to
        read instead of the source's streams (`ray_datasets.SplitStream`)."""
        self.rank, self.world_size, self.seed = rank, world_size, config.train.seed
        self.splits = splits or {}
        self.skills = setup.train_skills
        self.sequence_length = config.data.sequence_length
        self.pad_id = tokenizer.pad_token_id
        self.config, self.setup, self.tokenizer = config, setup, tokenizer
        self.streams: dict[str, Any] = {}  # opened lazily: a skill with weight 0 is never read
        self.global_positions = np.zeros(len(self.skills), dtype=np.int64)
        self._pending_stream_states: dict[str, Any] = {}

    def _stream(self, skill: str):
        if skill not in self.streams:
            if skill in self.splits:
                stream = SplitStream(self.splits[skill], skill, self.sequence_length, self.seed, SPLIT_SHUFFLE_ROWS)
            else:
                stream = source_for(self.setup).open_stream(
                    skill, self.tokenizer, self.config, self.rank, self.world_size
                )
            if skill in self._pending_stream_states:
                stream.load_state_dict(self._pending_stream_states.pop(skill))
            self.streams[skill] = stream
        return self.streams[skill]

    def next_batch(self, counts_by_rank: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids [n, L], per-skill counts actually placed) for this rank at `step`."""
        if self.splits and not self.streams:  # every rank starts every split, in one order (see SplitStream)
            for skill in self.skills:
                if skill in self.splits:
                    self._stream(skill).start()
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

    def close(self) -> None:
        """Close the streams that hold a reader open (Ray Data splits)."""
        for stream in self.streams.values():
            if hasattr(stream, "close"):
                stream.close()

    def state_dict(self) -> dict[str, Any]:
        streams = {skill: stream.state_dict() for skill, stream in self.streams.items()}
        streams.update(self._pending_stream_states)
        return {"global_positions": self.global_positions.tolist(), "streams": streams}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.global_positions = np.asarray(state["global_positions"], dtype=np.int64)
        self.streams = {}
        self._pending_stream_states = dict(state.get("streams", {}))
