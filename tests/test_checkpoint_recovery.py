"""A bad or partial checkpoint never strands a run: restore verifies every checkpoint against its
manifest and falls back to the newest whole one, with the identical trajectory. Checkpoints follow
their own cadence and leave no staging directory behind.

In-process runs lay checkpoints out as Ray Train does (`<run>/fit-N/checkpoint_*`); one test runs the
real Ray Train path. Run: `.venv/bin/python -m pytest tests/test_checkpoint_recovery.py`.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import ray.train
import torch
from conftest import small_config

from skillit_ray.data.storage import RunStorage
from skillit_ray.mixture.registry import strategy_from_config
from skillit_ray.train import checkpoint, faults
from skillit_ray.train.callbacks import LoopCallback, LoopCallbacks
from skillit_ray.train.distributed import WorkerContext
from skillit_ray.train.faults import FAIL_AT_STEP_VARIABLE
from skillit_ray.train.launch import run_training
from skillit_ray.train.loop import training_loop
from skillit_ray.train.metrics import JsonlSink
from skillit_ray.train.resolve import resolve_run
from skillit_ray.train.sampler import MixtureSamplerState


class PersistCheckpoints(LoopCallback):
    """Checkpoints copied to `<run>/<fit>/checkpoint_<step>` as Ray Train persists them."""

    def __init__(self, storage: RunStorage, fit: str) -> None:
        self.storage, self.fit, self.steps = storage, fit, []

    def on_report(self, step, metrics, checkpoint_directory):
        if checkpoint_directory is not None:
            shutil.copytree(checkpoint_directory, self.storage.local_path() / self.fit / f"checkpoint_{step:06d}")
            self.steps.append(step)


def train_in_process(config, storage: RunStorage, resume_from: str | None = None, fit: str = "fit-0"):
    """The training loop in this process, persisting checkpoints and metrics like Ray Train; returns
    (records, checkpoint steps)."""
    config, setup = resolve_run(config)
    state = MixtureSamplerState(strategy_from_config(config, setup.train_skills, setup.eval_skills), config.train.seed)
    persist = PersistCheckpoints(storage, fit)
    callbacks = LoopCallbacks([persist, *faults.from_environment(resume_from is None, 0)])
    context = WorkerContext(0, 1, torch.device("cpu"))
    training_loop(config, setup, context, state, JsonlSink(storage), callbacks, resume_from)
    records = JsonlSink(storage)
    records.restore(config.train.steps)  # everything written
    return records.records(), persist.steps


def corrupt(directory: Path, kind: str) -> None:
    if kind == "truncated model":
        payload = (directory / "model.pt").read_bytes()
        (directory / "model.pt").write_bytes(payload[: len(payload) // 2])
    elif kind == "empty state":
        (directory / "train_state.json").write_text("")
    elif kind == "missing sampler":
        (directory / "sampler.json").unlink()
    elif kind == "truncated sampler":
        (directory / "sampler.json").write_text((directory / "sampler.json").read_text()[:40])
    elif kind == "disk full mid-write":  # the copy stopped inside optimizer.pt: later files, manifest absent
        payload = (directory / "optimizer.pt").read_bytes()
        (directory / "optimizer.pt").write_bytes(payload[:100])
        for name in ("scheduler.pt", "train_state.json", checkpoint.MANIFEST_FILE):
            (directory / name).unlink()


@pytest.mark.parametrize(
    "kind", ["truncated model", "empty state", "missing sampler", "truncated sampler", "disk full mid-write"]
)
def test_a_bad_newest_checkpoint_falls_back_to_the_previous_with_the_same_trajectory(
    tmp_path, monkeypatch, caplog, kind
):
    config = small_config(tmp_path, "run.name=recover")
    uninterrupted, _ = train_in_process(config, RunStorage(str(tmp_path / "whole"), "run"))
    storage = RunStorage(str(tmp_path), "recover")
    monkeypatch.setenv(FAIL_AT_STEP_VARIABLE, "10")  # after the checkpoints at steps 4 and 8
    with pytest.raises(RuntimeError, match="injected failure"):
        train_in_process(config, storage)
    monkeypatch.delenv(FAIL_AT_STEP_VARIABLE)
    corrupt(storage.local_path() / "fit-0" / "checkpoint_000008", kind)
    fingerprint = checkpoint.config_fingerprint(*resolve_run(config))
    with caplog.at_level(logging.WARNING, logger="skillit_ray"):
        latest = checkpoint.find_latest_checkpoint(storage, fingerprint)
    assert latest.endswith("fit-0/checkpoint_000004")
    assert "skipping checkpoint" in caplog.text and "checkpoint_000008" in caplog.text
    resumed, _ = train_in_process(config, storage, resume_from=latest, fit="fit-1")
    assert resumed["rounds"] == uninterrupted["rounds"]
    assert resumed["evaluations"] == uninterrupted["evaluations"]


def test_checkpoints_follow_their_own_cadence_and_leave_no_staging_directory(tmp_path, monkeypatch):
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # this test's own temporary directory
    overrides = ("mixture.num_rounds=2", "train.eval_every_n_steps=6", "train.checkpoint_every_n_steps=4")
    storage = RunStorage(str(tmp_path), "cadence")
    uninterrupted, checkpointed = train_in_process(small_config(tmp_path, *overrides), storage)
    assert checkpointed == [4, 8, 12]  # 4 and 8 are not evaluation steps
    assert not list((tmp_path / "tmp").iterdir())  # every staging directory was removed
    resumed, _ = train_in_process(
        small_config(tmp_path, *overrides), storage, storage.uri("fit-0/checkpoint_000008"), fit="fit-1"
    )  # mid-round, between evaluations
    assert resumed["rounds"] == uninterrupted["rounds"]
    losses = [[(record["step"], record["train_loss"]) for record in run["train"]] for run in (resumed, uninterrupted)]
    assert losses[0] == losses[1]  # no training-loss record lost across a checkpoint between evaluations


@pytest.mark.slow  # 50-60 s (three Ray Train fits); the fallback itself stays in the default suite (above)
def test_ray_train_restores_the_verified_checkpoint_not_its_own_newest(ray_local, tmp_path, monkeypatch, caplog):
    config = small_config(tmp_path, "run.name=ray-recover", "run.max_failures=0")
    expected, _ = train_in_process(config, RunStorage(str(tmp_path / "reference"), "run"))
    monkeypatch.setenv(FAIL_AT_STEP_VARIABLE, "10")
    with pytest.raises(ray.train.TrainingFailedError, match="injected failure"):
        run_training(config)
    monkeypatch.delenv(FAIL_AT_STEP_VARIABLE)
    run_directory = tmp_path / "ray-recover"
    newest = sorted(path for path in (run_directory / "fit-0").glob("checkpoint_*") if path.is_dir())[-1]
    (newest / "model.pt").write_bytes((newest / "model.pt").read_bytes()[:1000])
    with caplog.at_level(logging.INFO, logger="skillit_ray"):
        run_training(config)
    resumed_from = [record.getMessage() for record in caplog.records if "resuming run" in record.getMessage()]
    assert resumed_from and str(newest) not in resumed_from[0] and "fit-0/checkpoint_" in resumed_from[0]
    rounds = [json.loads(line) for line in (run_directory / "mixture.jsonl").read_text().splitlines()]
    assert [record["achieved_counts"] for record in rounds] == [r["achieved_counts"] for r in expected["rounds"]]
    for record, reference in zip(rounds, expected["rounds"]):
        np.testing.assert_allclose(record["weights"], reference["weights"], rtol=1e-5)
    summary_time = (run_directory / "summary.json").stat().st_mtime_ns
    assert run_training(config)["steps"] == 12  # finished: a no-op that returns the summary
    assert (run_directory / "summary.json").stat().st_mtime_ns == summary_time


@pytest.mark.slow  # 30 s; a failed worker restored from its checkpoint stays in the default suite (test_train_ray)
def test_a_killed_sampler_actor_costs_one_retry_and_keeps_the_trajectory(ray_local, tmp_path, monkeypatch):
    from skillit_ray.train.faults import KILL_SAMPLER_AT_STEP_VARIABLE

    config = small_config(tmp_path, "run.name=sampler-killed", "run.max_failures=1")
    expected, _ = train_in_process(config, RunStorage(str(tmp_path / "reference"), "run"))
    monkeypatch.setenv(KILL_SAMPLER_AT_STEP_VARIABLE, "4")  # SIGKILL right after the checkpoint at step 4
    run_training(config)
    rounds = [json.loads(line) for line in (tmp_path / "sampler-killed" / "mixture.jsonl").read_text().splitlines()]
    assert [record["achieved_counts"] for record in rounds] == [r["achieved_counts"] for r in expected["rounds"]]
    for record, reference in zip(rounds, expected["rounds"]):
        np.testing.assert_allclose(record["weights"], reference["weights"], rtol=1e-5)
