"""End-to-end Ray Train runs on a local Ray (2 CPU workers on gloo): mixture consistency, exact
quotas, checkpoint/restore and resume with another worker count. Each fit costs ~20 s of start-up,
so the module keeps the number of fits small and shares the results between tests.

Run: `.venv/bin/python -m pytest tests/test_train_ray.py`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import ray.train
from conftest import small_config

from skillit_ray.mixture.quotas import round_quotas
from skillit_ray.train.faults import FAIL_AT_STEP_VARIABLE
from skillit_ray.train.launch import run_training


def read_rounds(run_dir):
    return [json.loads(line) for line in (run_dir / "mixture.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(ray_local, tmp_path_factory):
    storage = tmp_path_factory.mktemp("runs")
    config = small_config(storage, "scaling.num_workers=2", "run.name=whole")
    summary = run_training(config)
    return storage / "whole", summary, config


def test_every_round_has_one_mixture_for_all_ranks_and_exact_counts(uninterrupted):
    run_dir, summary, config = uninterrupted
    rounds = read_rounds(run_dir)
    assert [record["round"] for record in rounds] == [0, 1, 2]
    for record in rounds:
        assert record["num_ranks_agreeing"] == 2
        start, end = config.train.steps_in_round(record["round"], config.mixture.num_rounds)
        expected = round_quotas(record["weights"], (end - start) * config.train.batch_size)
        assert record["achieved_counts"] == expected.tolist()
    # Skill-it moved the mixture away from the initial softmax of row sums
    assert rounds[0]["weights"] != rounds[2]["weights"]
    assert summary["strategy"] == "skillit" and len(summary["per_skill_accuracy"]) == 3
    assert summary["tokens_per_s"] > 0
    for name in ("metrics.jsonl", "summary.json", "mixture_weights.png", "val_loss.png"):
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0


def test_worker_failure_restores_from_checkpoint_and_keeps_the_trajectory(uninterrupted, tmp_path, monkeypatch):
    run_dir, _, _ = uninterrupted
    monkeypatch.setenv(FAIL_AT_STEP_VARIABLE, "6")  # after the round-1 checkpoint at step 4
    config = small_config(tmp_path, "scaling.num_workers=2", "run.name=retried", "run.max_failures=1",
                          "tracking.sinks=[jsonl, mlflow, tensorboard]")  # fmt: skip
    run_training(config)
    assert read_rounds(tmp_path / "retried") == read_rounds(run_dir)
    # the retry continued the same tracker runs, each step once (tests/test_tracking.py has the details)
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("skillit-ray").experiment_id])
    artifacts = {artifact.path for artifact in client.list_artifacts(run.info.run_id)}
    assert run.info.status == "FINISHED" and {"config.json", "summary.json"} <= artifacts
    evaluations = client.get_metric_history(run.info.run_id, "eval/mean_val_loss")
    assert [metric.step for metric in evaluations] == [0, 4, 8, 12]
    events = EventAccumulator(str(tmp_path / "retried" / "tensorboard"))
    events.Reload()
    assert [event.step for event in events.Scalars("mixture/round")] == [4, 8, 12]


def test_resume_with_a_different_worker_count_keeps_the_trajectory(uninterrupted, tmp_path, monkeypatch):
    run_dir, _, _ = uninterrupted
    monkeypatch.setenv(FAIL_AT_STEP_VARIABLE, "9")  # after the round-2 checkpoint at step 8
    failing = small_config(tmp_path, "scaling.num_workers=2", "run.name=elastic", "run.max_failures=0")
    with pytest.raises(ray.train.TrainingFailedError, match="injected failure"):
        run_training(failing)
    monkeypatch.delenv(FAIL_AT_STEP_VARIABLE)
    resumed = small_config(tmp_path, "scaling.num_workers=1", "run.name=elastic")
    run_training(resumed)
    got, expected = read_rounds(tmp_path / "elastic"), read_rounds(run_dir)
    # rounds finished before the checkpoint are replayed exactly
    assert got[:2] == expected[:2]
    # the round trained after the resume sees the same global samples; only float summation order
    # (1 vs 2 ranks) differs, so the trajectory agrees to rounding
    assert got[2]["achieved_counts"] == expected[2]["achieved_counts"]
    np.testing.assert_allclose(got[2]["weights"], expected[2]["weights"], rtol=1e-5)
    np.testing.assert_allclose(got[2]["val_loss"], expected[2]["val_loss"], rtol=1e-4)


def test_checkpoint_from_another_config_is_refused_before_training(uninterrupted):
    run_dir, _, config = uninterrupted
    other = small_config(run_dir.parent, "scaling.num_workers=2", "run.name=whole", "mixture.eta=0.9")
    with pytest.raises(ValueError, match="different configuration"):
        run_training(other)


def test_positional_parquet_on_two_workers_matches_one_worker_in_process(ray_local, lego_dataset, tmp_path):
    """data.parquet.split=positions: the same samples per round, and the same mixtures up to float
    summation order, whether 2 Ray Train workers or 1 in-process worker train the run."""
    from skillit_ray.train.local import run_local_training

    overrides = ("data.source=parquet", f"data.parquet.path={lego_dataset}", "data.parquet.split=positions")
    single = run_local_training(small_config(tmp_path, *overrides))["rounds"]
    run_training(small_config(tmp_path, *overrides, "scaling.num_workers=2", "run.name=positions"))
    rounds = read_rounds(tmp_path / "positions")
    assert [record["achieved_counts"] for record in rounds] == [record["achieved_counts"] for record in single]
    for record, expected in zip(rounds, single):
        np.testing.assert_allclose(record["weights"], expected["weights"], rtol=1e-4)
