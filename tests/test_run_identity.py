"""Run identity: a run directory belongs to one configuration and one live driver; a finished run is not
re-run; bad storage and GPU requests are refused before Ray starts.
Run: `.venv/bin/python -m pytest tests/test_run_identity.py`.
"""

from __future__ import annotations

import json

import pytest
from conftest import small_config

from skillit_ray.config.job import load_config
from skillit_ray.data.storage import RunStorage
from skillit_ray.train import run_identity
from skillit_ray.train.launch import run_training

IDENTITY = {"fingerprint": "abc", "seed": 0, "steps": 12, "num_rounds": 3}


def test_another_configuration_or_length_under_the_same_name_is_refused(tmp_path):
    storage = RunStorage(str(tmp_path), "run")
    assert run_identity.claim_run(storage, IDENTITY) is None
    run_identity.release_run(storage, IDENTITY, finished=False)
    with pytest.raises(ValueError, match="different configuration"):
        run_identity.claim_run(storage, {**IDENTITY, "fingerprint": "xyz"})
    with pytest.raises(ValueError, match="train.steps=12; train.steps=20 would move its round boundaries"):
        run_identity.claim_run(storage, {**IDENTITY, "steps": 20})
    assert run_identity.claim_run(storage, IDENTITY) is None  # the same run resumes


def test_a_second_live_run_is_refused_and_a_dead_drivers_lease_is_taken_over(tmp_path):
    storage = RunStorage(str(tmp_path), "run")
    run_identity.claim_run(storage, IDENTITY)  # this process holds the lease
    with pytest.raises(ValueError, match="run run is running .* process"):
        run_identity.claim_run(storage, IDENTITY)
    lease = json.loads(storage.read_text(run_identity.LEASE_FILE))
    storage.write_text(run_identity.LEASE_FILE, json.dumps({**lease, "process_id": 2**22 + 12345}))  # no such process
    assert run_identity.claim_run(storage, IDENTITY) is None
    run_identity.release_run(storage, IDENTITY, finished=True)
    assert not storage.exists(run_identity.LEASE_FILE)


def test_a_finished_run_is_a_no_op_that_returns_its_summary(tmp_path):
    storage = RunStorage(str(tmp_path), "run")
    run_identity.claim_run(storage, IDENTITY)
    storage.write_text("summary.json", json.dumps({"steps": 12, "mean_val_loss": 1.5}))
    run_identity.release_run(storage, IDENTITY, finished=True)
    before = (tmp_path / "run" / "summary.json").stat().st_mtime_ns
    assert run_identity.claim_run(storage, IDENTITY) == {"steps": 12, "mean_val_loss": 1.5}
    assert (tmp_path / "run" / "summary.json").stat().st_mtime_ns == before


@pytest.mark.parametrize("override, message", [
    ("run.name=..", "run.name='..' must be a plain name"),
    ("run.name=.", "run.name='.' must be a plain name"),
    ("train.seed=-1", "train.seed=-1 must be in 0..2"),
])  # fmt: skip
def test_bad_run_values_are_refused_when_the_config_loads(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_unreachable_storage_and_missing_gpus_are_refused_before_ray(tmp_path):
    with pytest.raises(ValueError, match="storage 'hdfs://nowhere:1/runs' is not reachable"):
        run_training(small_config(tmp_path, "run.storage_path=hdfs://nowhere:1/runs"))
    with pytest.raises(ValueError, match="scaling.use_gpu=true but this machine has no CUDA GPU"):
        run_training(small_config(tmp_path, "scaling.use_gpu=true"))
