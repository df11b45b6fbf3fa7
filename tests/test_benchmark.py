"""The benchmark scripts run end to end on tiny shapes and report every figure.

Not performance tests: they check that the measurements are taken and related (the throughput
benchmark's plain loops, the plain loop in a Ray Train worker and the pipeline, in one run), so the GPU
run of a script does not meet a broken code path first. Run: `.venv/bin/python -m pytest tests/test_benchmark.py`.
"""

from __future__ import annotations

import statistics

import pytest
import torch

from skillit_ray.benchmarks.throughput import throughput


@pytest.mark.slow  # 60 s: two Ray Train runs beside four plain loops; the default suite stays under 10 minutes
def test_throughput_relates_every_pipeline_run_to_the_plain_readings_around_it(ray_local):
    threads = torch.get_num_threads()
    try:
        result = throughput(
            ["model.size=tiny", "train.steps=12", "train.batch_size=8", "train.eval_every_n_steps=12"], repeats=1
        )
    finally:
        torch.set_num_threads(threads)  # the plain loop pins this process to the worker's thread count
    plain = result["plain_readings_tokens_per_s"]
    assert len(plain) == 3 and min(plain) > 0  # before Ray, with Ray up, after the pipeline run
    (pipeline,) = result["pipeline_runs_tokens_per_s"]
    (in_worker,) = result["plain_in_train_worker_tokens_per_s"]
    assert pipeline > 0 and in_worker > 0 and result["loop_without_ray_tokens_per_s"] > 0
    adjacent = (plain[1] + plain[2]) / 2
    assert abs(result["ratio_pipeline_over_adjacent_plain_median"] - pipeline / adjacent) < 2e-3
    assert abs(result["ratio_plain_in_worker_over_adjacent_plain_median"] - in_worker / adjacent) < 2e-3
    assert abs(result["ratio_pipeline_over_plain_in_worker_before_median"] - pipeline / in_worker) < 2e-3
    assert abs(result["ratio_pipeline_median_over_plain_median"] - pipeline / statistics.median(plain)) < 2e-3
    assert 0 <= result["pipeline_batch_assembly_share"] <= 1
    assert result["steps"] == 12 and result["device"] == "cpu"
    assert result["pipeline_cpu_seconds_by_process"]["ray::RayTrainWorker"] > 0  # the worker's CPU is seen
    assert result["interleaved_in_process"]["steps"] == 12


def test_the_interleaved_reading_times_all_three_step_kinds(tmp_path):
    from skillit_ray.benchmarks.throughput import interleaved_step_costs
    from skillit_ray.config.job import load_config

    threads = torch.get_num_threads()
    overrides = ["model.size=tiny", "data.lego.num_variables=3", "train.batch_size=4", "train.steps=6",
                 "data.sequence_length=24", "scaling.cpus_per_worker=1", f"run.storage_path={tmp_path}"]  # fmt: skip
    try:
        costs = interleaved_step_costs(load_config(None, overrides), steps=4, warmup_steps=1)
    finally:
        torch.set_num_threads(threads)
    assert costs["steps"] == 4 and costs["plain_step_ms"] > 0
    for kind in ("ratio_train_step_over_plain", "ratio_train_step_with_assembly_over_plain"):
        assert 0.1 < costs[kind] < 10, costs  # same model and batch shape: within an order of magnitude


def test_the_sampler_benchmark_agrees_with_the_baseline_and_publishes_to_every_worker(ray_local):
    from skillit_ray.benchmarks.sampler import publish_times, update_times

    for row in update_times(sizes=(10, 1000), repeats=1):
        assert row["max_weight_difference"] < 1e-6
    assert [row["product_dtype"] for row in update_times(sizes=(10, 1000), repeats=1)] == ["float64", "float32"]
    published = publish_times(worker_counts=(1, 3), num_skills=5, rounds=2)
    assert [(row["workers"], row["skills"]) for row in published] == [(1, 5), (3, 5)]


@pytest.mark.slow  # 34 s: a benchmark's bookkeeping; the readers it runs are tested in test_token_store.py
def test_the_data_path_benchmark_measures_the_readers_and_the_prepare_against_the_plain_loop(ray_local, tmp_path):
    from skillit_ray.benchmarks.data_path import data_path_benchmark, markdown
    from skillit_ray.benchmarks.efficiency_settings import text_directory

    prepared = str(text_directory(tmp_path, "quick"))
    # Ray Data's parquet pipelines take a minute to start on a loaded 2-core machine: its path is the same
    # stream the training tests read (test_data.py); the split over the store's shards runs at 3 skills
    readers = ("store", "arrow", "store_split")
    result = data_path_benchmark(prepared, skill_counts=(3, 40), skews=(1, 10), epochs=0.5, readers=readers,
                                 prepare_copies={3: 1})  # fmt: skip
    by_key = {(row["skills"], row["reader"], row["skew"]): row for row in result["rows"]}
    assert len(by_key) == 12
    for key, row in by_key.items():
        if key[0] == 40 and key[1] == "store_split":
            assert row["tokens_per_s"] is None and "not run" in row["note"]  # says why
        else:
            assert row["tokens_per_s"] > 0 and row["plain_tokens_per_s"] > 0 and row["steps"] >= 1
    assert [prepare["skills"] for prepare in result["prepare"]] == [3]
    for prepare in result["prepare"]:  # the same store every way (checked inside), timed every way
        assert prepare["prepare_one_process_tokens_per_s"] > 0 and prepare["prepare_ray_data_tokens_per_s"] > 0
    assert result["best_tokens_per_s_per_core"] > 0 and result["cores_per_gpu_for_gpt2_124m_h100"] >= 0
    assert "| 40 | store | 10:1 |" in markdown(result)
    assert "| 40 | arrow | 10:1 |" in markdown(result)


@pytest.mark.slow  # three Ray Train runs of 2 workers
def test_parallelism_benchmark_reads_every_variant(ray_local):
    from skillit_ray.benchmarks.parallelism import VARIANTS, parallelism_benchmark

    result = parallelism_benchmark(["model.size=tiny", "train.steps=12", "train.eval_every_n_steps=12"], repeats=1)
    assert set(result["medians"]) == set(VARIANTS)
    assert all(len(runs) == 1 and runs[0]["tokens_per_s"] > 0 for runs in result["runs"].values())
    assert result["tokens_per_s_against_ddp"]["ddp"] == 1.0
    assert 0.45 < result["model_state_bytes_against_ddp"]["fsdp"] < 0.6  # rank 0 holds about half the state
