"""The driver's progress lines while a run trains: one per finished round, read from the run directory.

Role in the flow: metrics (rank 0 writes `mixture.jsonl`) -> **progress** -> the driver's console. A
thread polls the run's round records through storage (once a second on local disk, every ten seconds
on object storage) and prints the new ones; it also calls `every_10_s` (the run's lease).
"""

from __future__ import annotations

import threading

import numpy as np

from skillit_ray.config.job import JobConfig
from skillit_ray.data.storage import RunStorage
from skillit_ray.train.metrics import MIXTURE_FILE, read_jsonl

MAX_PRINTED_WEIGHTS = 12
"""Up to this many skills the progress line lists every weight; above, their range (mixture.jsonl has all)."""


class ProgressPrinter(threading.Thread):
    """Driver thread: one line per finished round."""

    def __init__(self, storage: RunStorage, config: JobConfig, every_10_s=None) -> None:
        super().__init__(daemon=True)
        self.storage, self.config, self.every_10_s = storage, config, every_10_s
        self.poll_s = 1.0 if storage.is_local else 10.0
        self._stop_event = threading.Event()
        self._printed = 0

    def run(self) -> None:
        ticks = 0
        while not self._stop_event.wait(1.0):
            ticks += 1
            if ticks % int(self.poll_s) == 0:
                self.flush()
            if self.every_10_s is not None and ticks % 10 == 0:
                self.every_10_s()

    def flush(self) -> None:
        try:
            rounds = read_jsonl(self.storage, MIXTURE_FILE)
        except (OSError, ValueError):  # being rewritten, or storage unreachable for a moment
            return
        self._printed = min(self._printed, len(rounds))  # a resume rewrote the file from its checkpoint
        for record in rounds[self._printed :]:
            print(progress_line(self.config, record), flush=True)
        self._printed = len(rounds)

    def stop(self) -> None:
        self._stop_event.set()
        self.flush()


def progress_line(config: JobConfig, record: dict) -> str:
    line = (
        f"[{config.run.name}] round {record['round'] + 1}/{config.mixture.num_rounds} "
        f"step {record['step']}/{config.train.steps} {describe_weights(record['weights'])}"
    )
    if record["val_loss"]:
        line += f" mean val loss {np.mean(record['val_loss']):.4f}"
    if record["accuracy"]:
        line += f" mean acc {100 * np.mean(record['accuracy']):.1f}%"
    return line


def describe_weights(weights: list[float]) -> str:
    if len(weights) <= MAX_PRINTED_WEIGHTS:
        return "weights [" + " ".join(f"{weight:.2f}" for weight in weights) + "]"
    return f"weights of {len(weights)} skills in [{min(weights):.3f}, {max(weights):.3f}]"
