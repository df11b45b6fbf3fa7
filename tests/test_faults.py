"""Fault injection and the failure drill's bookkeeping: plans parse or are refused by name, each planned
fault fires once across restarts, the drill's schedule avoids checkpoint steps, and its comparison and
replay accounting count what they should. The drill itself (real kills of real processes) is the
`python -m skillit_ray.benchmarks chaos` benchmark; the recoveries it exercises are tested in
test_checkpoint_recovery.py and test_train_ray.py.

Run: `.venv/bin/python -m pytest tests/test_faults.py`.
"""

from __future__ import annotations

import json

import pytest
from conftest import small_config
from test_checkpoint_recovery import train_in_process

from skillit_ray.benchmarks import chaos
from skillit_ray.data.storage import RunStorage
from skillit_ray.train import checkpoint, faults


def test_a_plan_parses_and_a_bad_entry_is_named():
    assert faults.parse_plan(" worker@37, sampler@80 ,stop@130,") == [("worker", 37), ("sampler", 80), ("stop", 130)]
    with pytest.raises(ValueError, match="'explode@3'"):
        faults.parse_plan("worker@1,explode@3")
    with pytest.raises(ValueError, match="'worker@x'"):
        faults.parse_plan("worker@x")


def test_a_plan_without_a_fault_directory_is_refused(monkeypatch):
    monkeypatch.setenv(faults.FAULT_PLAN_VARIABLE, "sampler@4")
    monkeypatch.delenv(faults.FAULT_DIRECTORY_VARIABLE, raising=False)
    with pytest.raises(ValueError, match=faults.FAULT_DIRECTORY_VARIABLE):
        faults.FaultInjector(fresh_start=True, rank=0)


def test_a_planned_fault_fires_once_across_restarts_and_only_on_rank_zero(monkeypatch, tmp_path):
    monkeypatch.setenv(faults.FAULT_PLAN_VARIABLE, "sampler@4")
    monkeypatch.setenv(faults.FAULT_DIRECTORY_VARIABLE, str(tmp_path))
    kills = []
    other_rank = faults.FaultInjector(fresh_start=True, rank=1)
    for step in (2, 4, 6):
        other_rank.after_report(step, lambda: kills.append("rank 1"))
    first = faults.FaultInjector(fresh_start=True, rank=0)
    first.started(0)
    for step in (2, 6, 8):  # "at or after": the first report at or past step 4 fires it
        first.after_report(step, lambda step=step: kills.append(step))
    restarted = faults.FaultInjector(fresh_start=False, rank=0)
    restarted.started(4)
    for step in (4, 6, 8):
        restarted.after_report(step, lambda step=step: kills.append(step))
    assert kills == [6]
    events = faults.read_events(tmp_path)
    assert [(event["event"], event.get("step"), event.get("restored_step")) for event in events] == [
        ("start", None, 0),
        ("sampler", 6, None),
        ("start", None, 4),
    ]


def test_the_one_shot_test_faults_fire_only_in_a_fresh_run(monkeypatch):
    monkeypatch.setenv(faults.FAIL_AT_STEP_VARIABLE, "3")
    monkeypatch.setenv(faults.KILL_SAMPLER_AT_STEP_VARIABLE, "5")
    monkeypatch.delenv(faults.FAULT_PLAN_VARIABLE, raising=False)
    fresh, resumed = faults.FaultInjector(True, 0), faults.FaultInjector(False, 0)
    fresh.before_step(2)
    with pytest.raises(RuntimeError, match="injected failure at step 3"):
        fresh.before_step(3)
    resumed.before_step(3)
    kills = []
    fresh.after_report(5, lambda: kills.append("fresh"))
    resumed.after_report(5, lambda: kills.append("resumed"))
    assert kills == ["fresh"]


def test_the_drill_schedule_spreads_every_kind_off_the_checkpoint_steps():
    steps = chaos.STEPS_PER_FAULT * (2 * len(chaos.FAULT_KINDS) + 1)
    schedule = chaos.fault_schedule(2, steps, checkpoint_every=20)
    assert [kind for kind, _ in schedule] == list(chaos.FAULT_KINDS) * 2
    fault_steps = [step for _, step in schedule]
    assert fault_steps == sorted(set(fault_steps)) and 0 < fault_steps[0] and fault_steps[-1] < steps
    assert all(step % 20 for step in fault_steps)


def test_the_mixture_comparison_counts_lost_and_changed_rounds(tmp_path):
    rows = [{"round": index, "weights": [0.5, 0.5], "counts": [4, 4]} for index in range(4)]
    (tmp_path / "reference.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    drill = [rows[0], {**rows[1], "weights": [0.6, 0.4]}, rows[3], rows[3]]  # round 2 lost, round 1 changed
    (tmp_path / "drill.jsonl").write_text("".join(json.dumps(row) + "\n" for row in drill))
    assert chaos.compare_mixture_logs(tmp_path / "reference.jsonl", tmp_path / "drill.jsonl") == {
        "reference_rows": 4,
        "rows_lost": 1,
        "rows_changed": 1,
    }


def test_replayed_steps_run_from_each_fault_to_the_step_the_next_start_restored():
    events = [
        {"event": "start", "restored_step": 0},
        {"event": "worker", "planned_step": 51, "step": 51},
        {"event": "start", "restored_step": 40},
        {"event": "stop", "planned_step": 91, "step": 91},
    ]
    assert chaos.replayed_steps(events) == [
        {"kind": "worker", "planned_step": 51, "step": 51, "restored_step": 40, "replayed": 11},
        {"kind": "stop", "planned_step": 91, "step": 91, "restored_step": None, "replayed": None},
    ]


@pytest.mark.parametrize("kind", ["corrupt", "disk_full"])
def test_a_damaged_newest_checkpoint_is_passed_over_for_the_one_before_within_its_fit(tmp_path, kind):
    config = small_config(tmp_path, "run.name=drill", "train.steps=12")
    storage = RunStorage(str(tmp_path), "drill")
    _, written = train_in_process(config, storage, fit="fit-1")
    assert written[-2:] == [8, 12]
    assert checkpoint.newest_whole_checkpoint(storage, "fit-1")[0] == 12
    assert "step 12" in chaos.damage_newest_checkpoint(storage, kind)
    step, directory, state = checkpoint.newest_whole_checkpoint(storage, "fit-1")
    assert (step, state["step"], directory) == (8, 8, "fit-1/checkpoint_000008")
    assert checkpoint.newest_whole_checkpoint(storage, "fit-2") is None
