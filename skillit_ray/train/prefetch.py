"""Prefetch: the next step's batch assembled on a background thread while this step trains.

Role in the flow: round plan (`plans.Rounds`) -> **prefetch** -> loop. Never across a round start, an
evaluation or a checkpoint, so the rows, their order and every checkpointed position are exactly those
of the synchronous loop (`data.prefetch_batches=false`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from skillit_ray.train.plans import Rounds


class BatchPrefetcher:
    """This rank's batches, the next one assembled on a background thread while the current step trains.

    The batch of step t + 1 is started right after step t's batch is handed out, unless step t + 1
    starts a round (its mixture comes from the sampler, with a collective) or an evaluation or a
    checkpoint comes first (`is_due(t + 1)`: the checkpoint must hold the stream positions after step
    t). Those batches are assembled in line, as without prefetching. Steps are assembled strictly in
    order, one at a time, so the rows and their order are those of the synchronous loop.

    The thread assembles numpy rows and never calls torch: a torch op there would start a second
    OpenMP team, and with more OpenMP threads than cores libgomp stops spin-waiting, which made the
    same plain loop run 13-18% slower on the 2 cores here (docs/performance.md).
    """

    def __init__(self, rounds: Rounds, is_due: Callable[[int], bool], num_steps: int, enabled: bool = True) -> None:
        self.rounds, self.is_due, self.num_steps = rounds, is_due, num_steps
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skillit-prefetch") if enabled else None
        self.pending: tuple[int, Future] | None = None

    def _assemble(self, step: int) -> tuple[np.ndarray, np.ndarray, float]:
        started = time.perf_counter()
        rows = self.rounds.batch(step)
        return rows, self.rounds.last_counts, time.perf_counter() - started

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray, float]:
        """(token rows, this rank's per-skill counts, seconds spent assembling them, wherever that ran)."""
        if self.pending is not None and self.pending[0] == step:
            assembled = self.pending[1].result()
        else:
            assembled = self._assemble(step)
        self.pending = None
        following = step + 1
        if (
            self.executor is not None
            and following < self.num_steps
            and not self.is_due(following)
            and self.rounds.in_current_round(following)
        ):
            self.pending = (following, self.executor.submit(self._assemble, following))
        return assembled

    def close(self) -> None:
        """Wait for a batch still being assembled (its stream reads finish cleanly), then stop the thread."""
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
