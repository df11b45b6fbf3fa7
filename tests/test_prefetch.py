"""The next step's batch is assembled in the background while a step trains, and nothing else changes:
the same rows in the same order, the same checkpointed data positions, the same trajectory, with the
generator streams and with parquet through Ray Data, and the loop reports how much of the assembly
stayed on the critical path.

Run: `.venv/bin/python -m pytest tests/test_prefetch.py`.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import small_config
from test_checkpoint_recovery import train_in_process

from skillit_ray.data.storage import RunStorage
from skillit_ray.mixture.registry import strategy_from_config
from skillit_ray.train.distributed import WorkerContext
from skillit_ray.train.loop import training_loop
from skillit_ray.train.metrics import MemorySink
from skillit_ray.train.prefetch import BatchPrefetcher
from skillit_ray.train.resolve import resolve_run
from skillit_ray.train.sampler import MixtureSamplerState


def _without_timings(records: dict) -> dict:
    train = [{key: value for key, value in record.items() if key != "tokens_per_s"} for record in records["train"]]
    return {**records, "train": train, "throughput": None}


def _sampler_state(path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.parametrize(  # parquet through Ray Data: 37 s on 2 cores, in the slow suite
    "source", ["generator", pytest.param("parquet", marks=pytest.mark.slow)]
)
def test_prefetching_changes_no_row_no_position_and_no_trajectory(tmp_path, request, source):
    extra = []
    if source == "parquet":
        request.getfixturevalue("ray_local")
        extra = ["data.source=parquet", f"data.parquet.path={request.getfixturevalue('lego_dataset')}"]
    runs = {}
    for prefetch in (True, False):
        config = small_config(tmp_path, f"run.name=prefetch-{prefetch}", f"data.prefetch_batches={prefetch}", *extra)
        storage = RunStorage(str(tmp_path), f"prefetch-{prefetch}")
        records, checkpointed = train_in_process(config, storage)
        data_states = [  # every rank's data positions and RNG, and the sampler, at every checkpoint
            (json.loads((path / "train_state.json").read_text())["ranks"], _sampler_state(path / "sampler.json"))
            for path in sorted(storage.local_path().glob("fit-0/checkpoint_*"))
        ]
        runs[prefetch] = (_without_timings(records), checkpointed, data_states)
    assert runs[True] == runs[False]
    assert runs[True][1] and runs[True][2]  # checkpoints were written and compared


def test_the_loop_reports_assembly_time_and_the_part_steps_waited_for(tmp_path):
    config, setup = resolve_run(small_config(tmp_path, "train.steps=24", "train.eval_every_n_steps=12"))
    state = MixtureSamplerState(strategy_from_config(config, setup.train_skills, setup.eval_skills), 0)
    result = training_loop(config, setup, WorkerContext(0, 1, torch.device("cpu")), state, MemorySink())
    assert result.batch_assembly_s > 0 and 0 <= result.batch_waiting_s


class _Rounds:
    """Round bookkeeping stand-in: steps 0-5 are one round, 6-11 the next; records which steps it assembled."""

    def __init__(self) -> None:
        self.assembled, self.last_counts, self.current = [], None, 0

    def in_current_round(self, step: int) -> bool:
        return step // 6 == self.current

    def batch(self, step: int):
        self.current = step // 6
        self.assembled.append(step)
        self.last_counts = [step]
        return f"rows of {step}"


def test_nothing_is_prefetched_across_a_round_start_an_evaluation_or_the_end():
    rounds = _Rounds()
    prefetcher = BatchPrefetcher(rounds, is_due=lambda step: step == 3, num_steps=8)
    try:
        handed = [prefetcher.batch(step)[:2] for step in range(8)]
        assert handed == [(f"rows of {step}", [step]) for step in range(8)]
        assert rounds.assembled == list(range(8))  # each step once, in order
        assert prefetcher.pending is None  # step 8 does not exist
        prefetcher.batch(2)
        assert prefetcher.pending is None  # step 3 is due: assembled in line after the evaluation
        prefetcher.batch(5)
        assert prefetcher.pending is None  # step 6 starts a round
        prefetcher.batch(0)
        assert prefetcher.pending is not None and prefetcher.pending[0] == 1
    finally:
        prefetcher.close()
