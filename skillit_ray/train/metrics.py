"""The metrics seam: rank 0 writes every record of a run through one `MetricsSink`.

Role in the flow: loop (rank 0) -> **metrics** -> the run directory (`mixture.jsonl`, `metrics.jsonl`)
-> the driver's progress lines and summary (`progress.py`, `outputs.py`). Records are plain dicts
with a `kind`:

    train       step, train_loss, learning_rate, tokens_per_s, tokens_seen   every `train.log_every_n_steps`
    eval        step, val_loss (per evaluation skill), accuracy         every evaluation
    round       round, step, weights, achieved_counts, val_loss, accuracy, num_ranks_agreeing   every round end
    throughput  step, tokens_per_s, train_step_s, batch_assembly_s, batch_waiting_s            the end of a run

`JsonlSink` keeps them in the run directory through `RunStorage` (local disk or s3:// / gs://): round
records in `mixture.jsonl` (without `kind`), the rest in `metrics.jsonl` sorted by step. A resumed run
calls `restore(step)` first, which drops what was written after the checkpoint it restored, so no step
is written twice and the files match an uninterrupted run. `MemorySink` keeps them in memory (in-process
runs return them); every other rank writes to a `NullSink`. Rank 0 of a launched run writes through
`train/tracking.py`'s `TrackingSink`: the `JsonlSink` plus the experiment trackers of `tracking.sinks`.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from skillit_ray.data.storage import RunStorage

MIXTURE_FILE = "mixture.jsonl"
METRICS_FILE = "metrics.jsonl"
METRIC_KINDS = ("train", "eval", "throughput")


class MetricsSink(Protocol):
    def write(self, record: dict[str, Any]) -> None:
        """Record one metric record (a dict with "kind" and "step")."""

    def restore(self, step: int) -> None:
        """The run continues after `step` (0: from scratch): forget every record written after it."""

    def flush(self) -> None:
        """Make what was written durable (at evaluation and checkpoint points, and at the end)."""

    def close(self) -> None:
        """This process is done with the sink (its owner calls it, not the loop): trackers close their runs' files."""


class NullSink:
    """The sink of every rank but 0."""

    def write(self, record: dict[str, Any]) -> None:
        pass

    def restore(self, step: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class MemorySink:
    """Records kept in this process: what an in-process run returns."""

    def __init__(self) -> None:
        self.rounds: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        if record["kind"] == "round":
            self.rounds.append({key: value for key, value in record.items() if key != "kind"})
        else:
            self.metrics.append(dict(record))

    def restore(self, step: int) -> None:
        self.rounds = [record for record in self.rounds if step and record["step"] <= step]
        self.metrics = [record for record in self.metrics if step and record["step"] <= step]

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def records(self) -> dict[str, list[dict[str, Any]]]:
        """{"rounds": round records, "evaluations": eval records, "train": train records, "throughput": ...}."""
        by_kind = {kind: [record for record in self.metrics if record["kind"] == kind] for kind in METRIC_KINDS}
        return {"rounds": list(self.rounds), "evaluations": by_kind["eval"], "train": by_kind["train"],
                "throughput": by_kind["throughput"]}  # fmt: skip


class JsonlSink(MemorySink):
    """Records in the run directory: `mixture.jsonl` and `metrics.jsonl`, rewritten whole (atomically) at a flush."""

    def __init__(self, storage: RunStorage) -> None:
        super().__init__()
        self.storage = storage

    def restore(self, step: int) -> None:
        self.rounds = [record for record in read_jsonl(self.storage, MIXTURE_FILE) if step and record["step"] <= step]
        self.metrics = [record for record in read_jsonl(self.storage, METRICS_FILE) if step and record["step"] <= step]
        self.flush()

    def flush(self) -> None:
        metrics = sorted(self.metrics, key=lambda record: (record["step"], record["kind"]))
        self.storage.write_text(MIXTURE_FILE, "".join(json.dumps(record) + "\n" for record in self.rounds))
        self.storage.write_text(METRICS_FILE, "".join(json.dumps(record) + "\n" for record in metrics))


def read_jsonl(storage: RunStorage, name: str) -> list[dict[str, Any]]:
    """The records of one of the run's JSON-lines files (none when it does not exist yet)."""
    if not storage.exists(name):
        return []
    return [json.loads(line) for line in storage.read_text(name).splitlines() if line.strip()]
