"""Experiment tracking, read back with the trackers' own readers: MLflow's client (runs, metric histories,
artifacts), TensorBoard's EventAccumulator, and W&B's offline run files (its protobuf records). A resumed
run continues the same tracker runs and logs no step twice; the config refuses a missing tracker
package before Ray starts; the progress line's ETA.
Run: `.venv/bin/python -m pytest tests/test_tracking.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
from pathlib import Path

import pytest
import torch
from conftest import small_config
from test_checkpoint_recovery import PersistCheckpoints

from skillit_ray.config.job import load_config
from skillit_ray.config.loading import describe_fields
from skillit_ray.config.tracking import TrackingConfig
from skillit_ray.data.storage import RunStorage
from skillit_ray.mixture.registry import strategy_from_config
from skillit_ray.train import faults, outputs, tracking
from skillit_ray.train.callbacks import LoopCallbacks
from skillit_ray.train.distributed import WorkerContext
from skillit_ray.train.faults import FAIL_AT_STEP_VARIABLE
from skillit_ray.train.loop import training_loop
from skillit_ray.train.progress import RunClock, describe_top_skills, estimate_remaining_s, training_line
from skillit_ray.train.resolve import resolve_run
from skillit_ray.train.sampler import MixtureSamplerState

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")


def tracked_config(tmp_path, mlflow_database, sinks: str, *overrides: str):
    database = tmp_path / "mlflow.db"
    shutil.copy(mlflow_database, database)
    return small_config(tmp_path, f"tracking.sinks={sinks}", *overrides)


def train(step: int, loss: float) -> dict:
    return {"kind": "train", "step": step, "train_loss": loss, "learning_rate": 0.01, "tokens_per_s": 100.0,
            "tokens_seen": 224 * step}  # fmt: skip


def evaluation(step: int, num_skills: int) -> dict:
    return {"kind": "eval", "step": step, "val_loss": [1.0 + index for index in range(num_skills)],
            "accuracy": [0.5] * num_skills}  # fmt: skip


def write_steps(sink, steps, loss: float, num_skills: int) -> None:
    for step in steps:
        sink.write(train(step, loss))
        if step % 5 == 0:
            sink.write(evaluation(step, num_skills))
            sink.write({"kind": "round", "round": step // 5 - 1, "step": step, "weights": [0.5, 0.25, 0.25],
                        "achieved_counts": [2, 1, 1], "val_loss": [1.0], "accuracy": None})  # fmt: skip
            sink.flush()


def mlflow_client(config):
    from mlflow.tracking import MlflowClient

    return MlflowClient(config.tracking.resolved_mlflow_uri(config.run.storage_path))


def tensorboard_scalars(log_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


# ----------------------------------------------------------------------------- W&B's offline run files

WANDB_BLOCK_BYTES, WANDB_HEADER_BYTES = 32768, 7
"""W&B's .wandb file: a 7-byte header (":W&B", magic, version), then records in 32 KiB blocks, each
with a 7-byte header (checksum, length, type: 1 full, 2 first, 3 middle, 4 last)."""


def wandb_records(path: Path):
    """The protobuf records of one offline run file (wandb.proto.wandb_internal_pb2.Record)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    offset, pending = WANDB_HEADER_BYTES, b""
    while offset + WANDB_HEADER_BYTES <= len(data):
        space = WANDB_BLOCK_BYTES - offset % WANDB_BLOCK_BYTES
        _, length, kind = struct.unpack("<IHB", data[offset : offset + WANDB_HEADER_BYTES])
        if space < WANDB_HEADER_BYTES or (length == 0 and kind == 0):
            offset += space
            continue
        payload = data[offset + WANDB_HEADER_BYTES : offset + WANDB_HEADER_BYTES + length]
        offset += WANDB_HEADER_BYTES + length
        pending = payload if kind in (1, 2) else pending + payload
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def _start_order(path: Path) -> tuple[str, int]:
    """offline-run-<time>-<id>[-<n>]: by start time, then W&B's suffix for starts in the same second."""
    parts = path.parent.name.split("-")
    return parts[2], int(parts[4]) if len(parts) > 4 else 0


def wandb_history(run_directory: Path) -> list[dict]:
    """Every history row of every offline run directory (a resume adds one), in file order."""
    rows = []
    for path in sorted(run_directory.glob("wandb/offline-run-*/run-*.wandb"), key=_start_order):
        for record in wandb_records(path):
            if record.WhichOneof("record_type") == "history":
                items = record.history.item
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items})
    return rows


# ----------------------------------------------------------------------------- the sinks, driven with records


def test_resume_continues_the_same_tracker_runs_and_logs_each_step_once(tmp_path, mlflow_database):
    config = tracked_config(tmp_path, mlflow_database, "[jsonl, mlflow, tensorboard, wandb]")
    config, setup = resolve_run(config)
    storage = RunStorage(config.run.storage_path, config.run.name)
    num_skills = len(setup.eval_skills)
    first = tracking.tracking_sink(config, setup, storage)
    first.restore(0)
    write_steps(first, range(1, 21), 1.0, num_skills)
    first.close()
    run_id = tracking.read_tracker_runs(storage)["mlflow"]["run_id"]

    resumed = tracking.tracking_sink(config, setup, storage)  # the checkpoint at step 10: steps 11.. again
    resumed.restore(10)
    write_steps(resumed, range(11, 31), 2.0, num_skills)
    resumed.close()

    assert tracking.read_tracker_runs(storage)["mlflow"]["run_id"] == run_id
    client = mlflow_client(config)
    runs = client.search_runs([client.get_experiment_by_name("skillit-ray").experiment_id])
    assert [run.info.run_id for run in runs] == [run_id] and runs[0].info.run_name == config.run.name
    losses = client.get_metric_history(run_id, "train/loss")
    assert sorted(metric.step for metric in losses) == list(range(1, 31))
    assert {metric.step: metric.value for metric in losses}[20] == 1.0  # MLflow keeps the first attempt's
    evaluations = client.get_metric_history(run_id, "eval/mean_val_loss")
    assert sorted(metric.step for metric in evaluations) == [5, 10, 15, 20, 25, 30]
    shares = client.get_metric_history(run_id, f"mixture/achieved_share/{setup.train_skills[0]}")
    assert [metric.value for metric in shares] == [0.5] * 6
    assert client.get_run(run_id).data.params["train.steps"] == "12"

    events = tensorboard_scalars(storage.local_path() / "tensorboard")
    tensorboard_losses = events.Scalars("train/loss")
    assert [event.step for event in tensorboard_losses] == list(range(1, 31))
    assert {event.step: event.value for event in tensorboard_losses}[15] == 2.0  # the purge hides the first's
    assert [event.step for event in events.Scalars("eval/mean_val_loss")] == [5, 10, 15, 20, 25, 30]
    assert f"eval/val_loss/{setup.eval_skills[-1]}" in events.Tags()["scalars"]

    rows = wandb_history(storage.local_path())
    offline_runs = list(storage.local_path().glob("wandb/offline-run-*"))
    wandb_id = tracking.read_tracker_runs(storage)["wandb"]["run_id"]
    # offline-run-<time>-<id>, and "-1" after it when both started in the same second (a warm W&B service)
    assert len(offline_runs) == 2 and all(f"-{wandb_id}" in path.name for path in offline_runs)
    assert [row["_step"] for row in rows] == list(range(1, 31))  # one row per step over both attempts
    assert [row["_step"] for row in rows if "eval/mean_val_loss" in row] == [5, 10, 15, 20, 25, 30]
    assert rows[19]["train/loss"] == 1.0 and rows[20]["train/loss"] == 2.0


def test_after_a_crash_the_trackers_catch_up_from_the_jsonl_records_of_the_checkpoint(tmp_path, mlflow_database):
    config = tracked_config(tmp_path, mlflow_database, "[jsonl, mlflow, tensorboard]")
    config, setup = resolve_run(config)
    storage = RunStorage(config.run.storage_path, config.run.name)
    crashed = tracking.tracking_sink(config, setup, storage)
    crashed.restore(0)
    write_steps(crashed, range(1, 21), 1.0, len(setup.eval_skills))  # in the jsonl files, not yet in the trackers
    crashed.queue.put(None)  # the process dies: its tracking thread ends with the records pending
    crashed.thread.join()

    resumed = tracking.tracking_sink(config, setup, storage)
    resumed.restore(10)
    write_steps(resumed, range(11, 31), 2.0, len(setup.eval_skills))
    resumed.close()

    run_id = tracking.read_tracker_runs(storage)["mlflow"]["run_id"]
    losses = mlflow_client(config).get_metric_history(run_id, "train/loss")
    assert sorted((metric.step, metric.value) for metric in losses) == [(step, 1.0 if step <= 10 else 2.0)
                                                                       for step in range(1, 31)]  # fmt: skip
    events = tensorboard_scalars(storage.local_path() / "tensorboard")
    assert [event.step for event in events.Scalars("train/loss")] == list(range(1, 31))
    assert [event.step for event in events.Scalars("mixture/round")] == [5, 10, 15, 20, 25, 30]


def test_metric_names_cover_every_kind_and_make_skill_names_safe():
    train_skills, eval_skills = ["a", "b"], ["a", "b?c"]
    values = tracking.metric_values(evaluation(5, 2), train_skills, eval_skills)
    assert values == {"eval/val_loss/a": 1.0, "eval/val_loss/b_c": 2.0, "eval/mean_val_loss": 1.5,
                      "eval/accuracy/a": 0.5, "eval/accuracy/b_c": 0.5, "eval/mean_accuracy": 0.5}  # fmt: skip
    round_record = {"kind": "round", "round": 1, "step": 5, "weights": [0.75, 0.25], "achieved_counts": [1, 3]}
    assert tracking.metric_values(round_record, train_skills, eval_skills) == {
        "mixture/round": 1.0, "mixture/weight/a": 0.75, "mixture/weight/b": 0.25,
        "mixture/achieved_share/a": 0.25, "mixture/achieved_share/b": 0.75,
    }  # fmt: skip
    assert set(tracking.metric_values(train(3, 1.0), train_skills, eval_skills)) == {
        "train/loss", "train/learning_rate", "train/tokens_per_s", "train/tokens_seen"
    }  # fmt: skip


def test_a_tracker_error_is_raised_in_the_training_thread(tmp_path):
    config, setup = resolve_run(small_config(tmp_path))

    class Broken:
        def restore(self, step, written):
            pass

        def log(self, entries):
            raise ConnectionError("tracking server down")

        def close(self):
            pass

    sink = tracking.TrackingSink(tracking.JsonlSink(RunStorage(str(tmp_path), "run")), [Broken()], setup)
    sink.restore(0)
    sink.write(train(1, 1.0))
    sink.flush()  # the jsonl files; the trackers follow on their thread
    with pytest.raises(RuntimeError, match="experiment tracking failed: ConnectionError: tracking server down"):
        sink.close()


# ----------------------------------------------------------------------------- one run end to end, resumed


def train_with_tracking(config, storage: RunStorage, resume_from: str | None = None, fit: str = "fit-0") -> None:
    """The training loop in this process with rank 0's tracking sink, as a Ray Train worker runs it."""
    config, setup = resolve_run(config)
    state = MixtureSamplerState(strategy_from_config(config, setup.train_skills, setup.eval_skills), config.train.seed)
    callbacks = LoopCallbacks([PersistCheckpoints(storage, fit), *faults.from_environment(resume_from is None, 0)])
    sink = tracking.tracking_sink(config, setup, storage)
    try:
        training_loop(config, setup, WorkerContext(0, 1, torch.device("cpu")), state, sink, callbacks, resume_from)
    finally:
        sink.close()


def test_a_run_resumed_after_a_failure_is_one_tracker_run_with_its_artifacts(tmp_path, mlflow_database, monkeypatch):
    config = tracked_config(
        tmp_path, mlflow_database, "[mlflow, tensorboard]", "run.name=tracked", "train.steps=8", "mixture.num_rounds=2"
    )  # evaluations at steps 0, 4, 8; checkpoints at 4, 8
    storage = RunStorage(str(tmp_path), "tracked")
    tracking.open_tracker_runs(config, storage)  # the driver, before Ray starts
    monkeypatch.setenv(FAIL_AT_STEP_VARIABLE, "6")
    with pytest.raises(RuntimeError):
        train_with_tracking(config, storage)
    tracking.mark_tracker_runs_failed(config, storage)
    monkeypatch.delenv(FAIL_AT_STEP_VARIABLE)
    train_with_tracking(config, storage, storage.uri("fit-0/checkpoint_000004"), fit="fit-1")
    _, setup = resolve_run(config)
    outputs.write_run_outputs(storage, config, setup, wall_s=1.0, stopped=None)
    tracking.finish_tracker_runs(config, storage, finished=True)

    client = mlflow_client(config)
    (run,) = client.search_runs([client.get_experiment_by_name("skillit-ray").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_id == tracking.read_tracker_runs(storage)["mlflow"]["run_id"]
    steps = [metric.step for metric in client.get_metric_history(run.info.run_id, "eval/mean_val_loss")]
    assert steps == [0, 4, 8]
    train_steps = [metric.step for metric in client.get_metric_history(run.info.run_id, "train/loss")]
    assert len(train_steps) == len(set(train_steps)) and max(train_steps) == 8
    assert max(metric.value for metric in client.get_metric_history(run.info.run_id, "train/tokens_seen")) == 8 * 8 * 28
    assert len(client.get_metric_history(run.info.run_id, f"mixture/weight/{setup.train_skills[0]}")) == 2
    artifacts = {item.path for item in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "summary.json", "metrics.jsonl", "mixture.jsonl", "val_loss.png"} <= artifacts

    events = tensorboard_scalars(storage.local_path() / "tensorboard")
    assert [event.step for event in events.Scalars("eval/mean_val_loss")] == [0, 4, 8]
    assert "summary" in " ".join(events.Tags()["tensors"]) and "plots/val_loss" in events.Tags()["images"]


# ----------------------------------------------------------------------------- config, checked before Ray


def test_tracking_keys_are_checked_and_documented(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"tracking.sinks='mlfow' is not valid; choose one of jsonl, mlflow"):
        load_config(None, ["tracking.sinks=[mlfow]"])
    with pytest.raises(ValueError, match=r"unknown key\(s\) tracking.sink in tracking; valid keys: sinks"):
        load_config(None, ["tracking.sink=[mlflow]"])
    with pytest.raises(ValueError, match="tracking.wandb_mode='upload' is not valid"):
        load_config(None, ["tracking.wandb_mode=upload"])
    with pytest.raises(ValueError, match="tensorboard writes its files under the run directory"):
        load_config(None, ["tracking.sinks=[tensorboard]", "run.storage_path=s3://bucket/runs"])
    with pytest.raises(ValueError, match="set tracking.mlflow_uri"):
        load_config(None, ["tracking.sinks=[mlflow]", "run.storage_path=s3://bucket/runs"])
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    with pytest.raises(ValueError, match=r"the wandb package is not installed: pip install 'skillit-ray\[wandb\]'"):
        load_config(None, ["tracking.sinks=[jsonl, wandb]"])
    monkeypatch.chdir(tmp_path)
    config = load_config(None, ["tracking.mlflow_uri=sqlite:///store.db", "run.storage_path=runs"])
    assert config.tracking.mlflow_uri == f"sqlite:///{tmp_path}/store.db"
    assert TrackingConfig().resolved_mlflow_uri(str(tmp_path)) == f"sqlite:///{tmp_path}/mlflow.db"
    rows = describe_fields(TrackingConfig, "tracking.")
    names = ("sinks", "mlflow_uri", "experiment", "wandb_project", "wandb_mode")
    assert [key for key, *_ in rows] == [f"tracking.{name}" for name in names]
    assert all(docstring for *_, docstring in rows)


# ----------------------------------------------------------------------------- the progress line


def test_the_eta_is_the_remaining_steps_plus_the_remaining_evaluations():
    # 100 steps at 0.1 s and 2 evaluations took 14 s: an evaluation took (14 - 10) / 2 = 2 s
    assert estimate_remaining_s(0.1, 50, 3, observed_s=14.0, observed_steps=100, observed_evaluations=2) == 11.0
    assert estimate_remaining_s(0.1, 50, 3, observed_s=9.0, observed_steps=100, observed_evaluations=0) == 5.0
    assert estimate_remaining_s(0.5, 0, 0, observed_s=1.0, observed_steps=2, observed_evaluations=1) == 0.0


def test_the_training_line_names_step_round_speed_loss_top_skills_and_eta(tmp_path):
    config = small_config(tmp_path)  # 12 steps of 8 x 28 tokens, evaluations at 0, 4, 8, 12, 3 rounds
    clock = RunClock(config)
    clock.observe(2, now_s=clock.started_s)
    now = clock.started_s + 62.0  # steps 3..6 at 224 / 112 = 2 s each (8 s) and the evaluation at 4
    record = {"step": 6, "train_loss": 2.31413, "tokens_per_s": 112.0, "learning_rate": 0.001}
    line = training_line(config, record, describe_top_skills([0.2, 0.5, 0.3], ["a", "b", "c"]), clock, now)
    # ETA: 6 steps x 2 s + 2 evaluations x (62 - 8) s = 120 s
    assert line == (
        "[run] step 6/12 round 2/3 | 112 tok/s | loss 2.3141 | top skills b 0.50 c 0.30 a 0.20 | 1m02s, ETA 2m00s"
    )
    # at step 8 the evaluation of step 8 is still to come: 4 steps x 2 s + 2 x (62 - 12) s
    assert clock.eta(8, 112.0, now) == "1m48s"
    clock.first = (5, now - 6.0)  # no evaluation timed since step 5: the steps alone, a lower bound
    assert clock.eta(8, 112.0, now) == ">8s"


def test_the_progress_file_holds_the_newest_training_record(tmp_path):
    config, setup = resolve_run(small_config(tmp_path))
    storage = RunStorage(str(tmp_path), "run")
    sink = tracking.tracking_sink(config, setup, storage)
    sink.restore(0)
    for step in (1, 2):
        sink.write(train(step, 1.0 / step))
    sink.flush()
    sink.close()
    assert json.loads(storage.read_text(tracking.PROGRESS_FILE))["step"] == 2
    assert not storage.exists(tracking.TRACKING_FILE)  # jsonl only: no tracker run to remember


# ----------------------------------------------------------------------------- the quiet console


def test_the_console_is_quiet_unless_verbose(monkeypatch):
    import logging

    from skillit_ray.cli import build_parser
    from skillit_ray.train import console

    monkeypatch.setenv(console.VERBOSE_VARIABLE, "0")  # restored after the test: configure_console sets it
    monkeypatch.setenv("MLFLOW_LOGGING_LEVEL", "WARNING")
    monkeypatch.delenv(console.NEW_OUTPUT_VARIABLE, raising=False)
    options = console.ray_console_options()
    assert options["logging_level"] == logging.WARNING and options["logging_config"].log_level == "WARNING"
    assert console.ray_log_level() == "WARNING" and console.tune_run_options() == {"verbose": 0}
    with console.quiet_tune_output():  # Tune's legacy output engine: silent at verbose=0, no table or hint
        assert os.environ[console.NEW_OUTPUT_VARIABLE] == "0"
    assert console.NEW_OUTPUT_VARIABLE not in os.environ
    from transformers.utils import logging as transformers_logging

    enabled = transformers_logging.is_progress_bar_enabled()
    with console.no_progress_bars():  # save_pretrained's bar, drawn in a worker, is lines on the driver's console
        assert not transformers_logging.is_progress_bar_enabled()
    assert transformers_logging.is_progress_bar_enabled() == enabled
    console.configure_console(False)
    notices = logging.getLogger(console.RAY_TOKEN_NOTICE_LOGGER)
    assert not notices.filter(logging.makeLogRecord({"msg": "Token authentication is enabled for this Ray cluster."}))
    assert notices.filter(logging.makeLogRecord({"msg": "Token authentication is disabled for this Ray cluster."}))
    # ray.init's LoggingConfig adds its handler to the root logger beside ours: the root logger keeps ours
    ours, rays = logging.StreamHandler(), logging.StreamHandler()
    monkeypatch.setattr(logging.getLogger(), "handlers", [ours, rays])
    monkeypatch.setattr(logging.getLogger("ray"), "handlers", [rays])
    console.keep_our_root_handler()
    assert logging.getLogger().handlers == [ours] and logging.getLogger("ray").handlers == [rays]
    arguments = build_parser().parse_args(["train", "--config", "run.yaml", "--verbose"])
    assert arguments.verbose and not build_parser().parse_args(["demo"]).verbose
    console.configure_console(arguments.verbose)
    assert console.is_verbose() and console.ray_console_options() == {} and console.ray_log_level() == "INFO"
    with console.quiet_tune_output():
        assert console.tune_run_options() == {} and console.NEW_OUTPUT_VARIABLE not in os.environ
