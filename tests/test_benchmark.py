"""The throughput benchmark script runs end to end on a tiny shape and reports every figure.

Not a performance test: it only checks that the three measurements (plain PyTorch, the loop
without Ray, the full Ray pipeline) are taken and related, so the GPU run of the script does not
meet a broken code path first. Run: `.venv/bin/python -m pytest tests/test_benchmark.py`.
"""

from __future__ import annotations

import torch

from skillit_ray.benchmark import throughput


def test_throughput_reports_plain_loop_and_pipeline_in_one_run(ray_local):
    threads = torch.get_num_threads()
    try:
        result = throughput(["model.size=tiny", "train.steps=12", "train.batch_size=8", "train.eval_every_n_steps=12"])
    finally:
        torch.set_num_threads(threads)  # the plain loop pins this process to the worker's thread count
    figures = ("plain_pytorch_tokens_per_s", "plain_pytorch_with_ray_up_tokens_per_s", "loop_without_ray_tokens_per_s")
    for key in (*figures, "pipeline_tokens_per_s"):
        assert result[key] > 0
    ratio = result["pipeline_tokens_per_s"] / result["plain_pytorch_tokens_per_s"]
    assert abs(result["ratio_pipeline_over_plain"] - ratio) < 2e-3
    assert 0 <= result["pipeline_batch_assembly_share"] <= 1
    assert result["steps"] == 12 and result["device"] == "cpu"


def test_the_sampler_benchmark_agrees_with_the_baseline_and_publishes_to_every_worker(ray_local):
    from skillit_ray.sampler_benchmark import publish_times, update_times

    for row in update_times(sizes=(10, 1000), repeats=1):
        assert row["max_weight_difference"] < 1e-6
    assert [row["product_dtype"] for row in update_times(sizes=(10, 1000), repeats=1)] == ["float64", "float32"]
    published = publish_times(worker_counts=(1, 3), num_skills=5, rounds=2)
    assert [(row["workers"], row["skills"]) for row in published] == [(1, 5), (3, 5)]
