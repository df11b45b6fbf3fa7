"""The metrics seam: rank 0's records reach the run directory, a resume forgets what came after its
checkpoint so no step is written twice, and the callback seam sees the loop's events.
Run: `.venv/bin/python -m pytest tests/test_metrics.py`.
"""

from __future__ import annotations

import json

from conftest import small_config
from test_checkpoint_recovery import train_in_process

from skillit_ray.data.storage import RunStorage
from skillit_ray.train.callbacks import LoopCallback
from skillit_ray.train.local import run_local_training
from skillit_ray.train.metrics import METRICS_FILE, MIXTURE_FILE, JsonlSink, MemorySink


def records(step: int) -> list[dict]:
    return [{"kind": "train", "step": step, "train_loss": 1.0}, {"kind": "eval", "step": step, "val_loss": [1.0]},
            {"kind": "round", "round": step, "step": step, "weights": [1.0]}]  # fmt: skip


def test_a_jsonl_sink_keeps_records_up_to_the_restored_step(tmp_path):
    storage = RunStorage(str(tmp_path), "run")
    sink = JsonlSink(storage)
    sink.restore(0)
    for step in (0, 4, 8):
        for record in records(step):
            sink.write(record)
    sink.flush()
    resumed = JsonlSink(storage)
    resumed.restore(4)  # the checkpoint at step 4: steps 8 and later are trained again
    lines = [json.loads(line) for line in storage.read_text(METRICS_FILE).splitlines()]
    assert [(line["kind"], line["step"]) for line in lines] == [("eval", 0), ("train", 0), ("eval", 4), ("train", 4)]
    assert [json.loads(line)["round"] for line in storage.read_text(MIXTURE_FILE).splitlines()] == [0, 4]
    fresh = JsonlSink(storage)
    fresh.restore(0)  # a run from scratch starts empty
    assert storage.read_text(METRICS_FILE) == "" and fresh.records()["rounds"] == []


def test_a_resumed_run_writes_no_step_twice(tmp_path, monkeypatch):
    config = small_config(tmp_path, "run.name=once")
    storage = RunStorage(str(tmp_path), "once")
    monkeypatch.setenv("SKILLIT_RAY_FAIL_AT_STEP", "10")
    try:
        train_in_process(config, storage)
    except RuntimeError:
        pass
    monkeypatch.delenv("SKILLIT_RAY_FAIL_AT_STEP")
    train_in_process(config, storage, storage.uri("fit-0/checkpoint_000008"), fit="fit-1")
    lines = [json.loads(line) for line in storage.read_text(METRICS_FILE).splitlines()]
    keys = [(line["kind"], line["step"]) for line in lines]
    assert len(keys) == len(set(keys)) and ("eval", 12) in keys
    assert [json.loads(line)["round"] for line in storage.read_text(MIXTURE_FILE).splitlines()] == [0, 1, 2]


class Recorder(LoopCallback):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_start(self, restored_step):
        self.events.append(("start", restored_step))

    def before_step(self, step):
        self.events.append(("step", step))

    def on_report(self, step, metrics, checkpoint_directory):
        self.events.append(("report", step, "mean_val_loss" in metrics, checkpoint_directory is not None))


def test_callbacks_see_the_start_every_step_and_every_report(tmp_path):
    recorder = Recorder()
    run_local_training(small_config(tmp_path), [recorder], write_checkpoints=True)
    steps = [event[1] for event in recorder.events if event[0] == "step"]
    reports = [event[1:] for event in recorder.events if event[0] == "report"]
    assert recorder.events[0] == ("start", 0) and steps == list(range(12))
    assert reports == [(0, True, False), (4, True, True), (8, True, True), (12, True, True)]


def test_a_memory_sink_returns_records_by_kind():
    sink = MemorySink()
    for record in records(0) + [{"kind": "throughput", "step": 12, "tokens_per_s": 5.0}]:
        sink.write(record)
    kept = sink.records()
    assert [len(kept[key]) for key in ("rounds", "evaluations", "train", "throughput")] == [1, 1, 1, 1]
    assert "kind" not in kept["rounds"][0]
