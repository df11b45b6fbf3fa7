"""Throughput of the training steps: tokens/s without a device sync per step, and where the batch time went.

Role in the flow: loop -> **throughput** -> the train records (`metrics.py`) and the run's summary. The
clock counts the training steps only (evaluation excluded, the first steps after a (re)start left out),
the batch-assembly time within them, and how much of it the steps waited for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from skillit_ray.config.job import JobConfig
from skillit_ray.train.step import global_mean_loss

UNTIMED_WARMUP_STEPS = 5
"""Steps after a (re)start left out of the run's tokens/s, like the warm-up of the plain-PyTorch
reference in the throughput benchmark (torch.compile and the first Ray Data blocks land there)."""


@dataclass
class LoopResult:
    step: int
    tokens_per_s: float
    train_wall_s: float
    batch_assembly_s: float
    """Assembling this rank's batches, wherever it ran (in line or on the prefetch thread)."""
    batch_waiting_s: float
    """The part of it the training steps waited for (the critical path)."""
    peak_memory_bytes: int = 0
    """This rank's peak: CUDA memory allocated on a GPU, the process's resident set on a CPU."""


class TrainingTimer:
    """Wall time of the training steps without a device sync per step.

    The clock runs from the first step after an evaluation to the next evaluation and stops only
    once the device has finished the queued work, so asynchronous CUDA execution is neither hidden
    nor stalled (a per-step `cuda.synchronize` would stop the host from preparing the next batch).
    """

    def __init__(self, device: torch.device) -> None:
        self.device, self.total_s, self.started = device, 0.0, None

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def start(self) -> None:
        if self.started is None:
            self._synchronize()
            self.started = time.perf_counter()

    def stop(self) -> None:
        if self.started is not None:
            self._synchronize()
            self.total_s += time.perf_counter() - self.started
            self.started = None

    def reset(self) -> None:
        self.stop()
        self.total_s = 0.0

    def elapsed(self) -> float:
        """Seconds so far (call after a host sync for an exact figure while running)."""
        return self.total_s + (time.perf_counter() - self.started if self.started is not None else 0.0)


class ThroughputMeter:
    """Tokens/s of the training steps (evaluation excluded, first steps after a (re)start left out),
    the batch-assembly time within them, and the periodic training-loss records."""

    def __init__(self, config: JobConfig, device: torch.device, start_step: int) -> None:
        self.config, self.start_step = config, start_step
        self.timer = TrainingTimer(device)
        self.tokens_per_step = config.train.batch_size * config.data.sequence_length  # global positions
        # compilation, allocator and stream warm-up land in the first steps after a (re)start
        self.untimed_steps = min(UNTIMED_WARMUP_STEPS, max(0, config.train.steps - start_step - 1))
        self.assembly_s, self.waiting_s, self.last_log = 0.0, 0.0, (start_step, 0.0)
        self._batch_started = 0.0

    def begin_step(self, step: int) -> None:
        if step == self.start_step + self.untimed_steps:
            self.timer.reset()
            self.assembly_s, self.waiting_s, self.last_log = 0.0, 0.0, (step, 0.0)
        self.timer.start()
        self._batch_started = time.perf_counter()

    def batch_assembled(self, assembly_s: float) -> None:
        """The step has its batch: `assembly_s` of assembly work (in line or in the background), of which
        the time since `begin_step` was on the critical path."""
        self.assembly_s += assembly_s
        self.waiting_s += time.perf_counter() - self._batch_started

    def train_record(self, completed: int, loss_sum, global_tokens: float, learning_rate: float) -> dict | None:
        """The training-loss record of a log step (the loop's only per-interval host sync), else None."""
        train = self.config.train
        if completed % train.log_every_n_steps != 0 and completed != train.steps:
            return None
        train_loss = global_mean_loss(loss_sum, global_tokens)  # syncs first, so the clock includes the step
        seconds = self.timer.elapsed()
        interval_s = max(seconds - self.last_log[1], 1e-9)
        record = {
            "kind": "train",
            "step": completed,
            "train_loss": train_loss,
            "learning_rate": learning_rate,
            "tokens_per_s": (completed - self.last_log[0]) * self.tokens_per_step / interval_s,
            "tokens_seen": completed * self.tokens_per_step,  # input positions, padding included (HF's count)
        }
        self.last_log = (completed, seconds)
        return record

    def pause(self) -> None:
        """Stop the clock for an evaluation (not training time)."""
        self.timer.stop()
        self.last_log = (self.last_log[0], self.timer.elapsed())

    def result(self) -> LoopResult:
        self.timer.stop()
        train_steps = self.config.train.steps - self.start_step - self.untimed_steps
        tokens_per_s = train_steps * self.tokens_per_step / max(self.timer.elapsed(), 1e-9)
        return LoopResult(self.config.train.steps, tokens_per_s, self.timer.elapsed(), self.assembly_s, self.waiting_s,
                          peak_memory_bytes(self.timer.device))  # fmt: skip


def peak_memory_bytes(device: torch.device) -> int:
    """This process's peak memory on `device`: CUDA memory allocated, else the resident set (Linux: KiB)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
