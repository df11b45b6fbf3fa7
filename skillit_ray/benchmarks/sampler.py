"""`python -m skillit_ray.benchmarks sampler`: how the online sampler scales with skills and workers.

Role in the flow: a benchmark beside the product (not a test). Two measurements, printed as JSON:

* update time of one Skill-it round at k = m = 10, 100, 1,000, 10,000 skills: the rule as it ran
  before (`baseline`: the graph converted and checked on every update, float64 product) next to
  `SkillitUpdate` (checked once; float32 centred product from `skillit_update.FLOAT32_FROM_ENTRIES`
  entries), same graph and losses, same process, with the largest weight difference between them;
* the time to publish one round to 1, 8 and 64 workers: the real `MixtureSampler` actor and one
  `ActorSamplerClient` per simulated worker (an actor with `num_cpus=0` each, all on this machine):
  rank 0 reports an evaluation, then every worker asks for the round, as the training loop does.

Nothing here changes how a run behaves; the actors are ended with `ray.kill`, the local Ray it
started with `ray.shutdown`.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from skillit_ray.benchmarks.registry import Benchmark
from skillit_ray.mixture.update import SkillitUpdate, as_graph

UPDATE_SIZES = (10, 100, 1_000, 10_000)
WORKER_COUNTS = (1, 8, 64)


def _baseline_weights(graph: np.ndarray, history: list[np.ndarray], eta: float, window: int) -> np.ndarray:
    """The update as `skillit_weights` computed it before `SkillitUpdate`: checks and float64 every call."""
    matrix = as_graph(graph)
    aggregated = np.asarray(history[-window:], dtype=np.float64).sum(axis=0)
    logits = eta * (matrix @ aggregated)
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


def _median_ms(function, repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        timings.append(time.perf_counter() - started)
    return round(1e3 * statistics.median(timings), 3)


def _time_one_size(size: int, generator: np.random.Generator, eta: float, window: int, repeats: int) -> dict:
    graph = generator.uniform(-0.2, 1.0, (size, size))  # relative drops: up to 1, a few negative
    history = [generator.uniform(2.0, 10.0, size) for _ in range(window)]
    started = time.perf_counter()
    update = SkillitUpdate(graph, eta, window)
    prepare_ms = 1e3 * (time.perf_counter() - started)
    difference = np.abs(update.weights(history) - _baseline_weights(graph, history, eta, window)).max()
    return {
        "skills": size,
        "baseline_ms": _median_ms(lambda: _baseline_weights(graph, history, eta, window), repeats),
        "update_ms": _median_ms(lambda: update.weights(history), repeats),
        "product_dtype": str(update.matrix.dtype),
        "prepare_once_ms": round(prepare_ms, 1),
        "max_weight_difference": float(difference),
    }


def update_times(sizes=UPDATE_SIZES, repeats: int = 7, eta: float = 0.1, window: int = 3) -> list[dict[str, Any]]:
    """Per size: median ms of the baseline and of `SkillitUpdate.weights`, and their largest difference."""
    generator = np.random.default_rng(0)
    return [_time_one_size(size, generator, eta, window, repeats) for size in sizes]


def publish_times(worker_counts=WORKER_COUNTS, num_skills: int = 100, rounds: int = 10) -> list[dict[str, Any]]:
    """Per worker count: median and max ms from rank 0's evaluation report to every worker holding the round."""
    import ray

    from skillit_ray.mixture.strategies.skillit import SkillItMixture
    from skillit_ray.train.sampler import ActorSamplerClient, MixtureSampler

    @ray.remote(num_cpus=0)
    class SimulatedWorker:
        def __init__(self, sampler) -> None:
            self.client = ActorSamplerClient(sampler)

        def fetch(self, round_index: int, evaluations: int) -> int:
            return len(self.client.get_round(round_index, evaluations)["weights"])

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    results = []
    try:
        generator = np.random.default_rng(0)
        for count in worker_counts:
            strategy = SkillItMixture(num_skills, graph=generator.uniform(0, 1, (num_skills, num_skills)), eta=0.01)
            sampler = MixtureSampler.remote(strategy, 0)
            workers = [SimulatedWorker.remote(sampler) for _ in range(count)]
            ray.get([worker.fetch.remote(0, 0) for worker in workers])  # every worker started, round 0 out
            timings = []
            for round_index in range(1, rounds + 1):
                started = time.perf_counter()
                ray.get(sampler.invoke.remote("report_evaluation", round_index, [5.0] * num_skills))
                sizes = ray.get([worker.fetch.remote(round_index, round_index) for worker in workers])
                timings.append(time.perf_counter() - started)
                assert sizes == [num_skills] * count
            results.append({"workers": count, "skills": num_skills,
                            "median_ms": round(1e3 * statistics.median(timings), 2),
                            "max_ms": round(1e3 * max(timings), 2)})  # fmt: skip
            for actor in [*workers, sampler]:
                ray.kill(actor)
    finally:
        if started_here:
            ray.shutdown()
    return results


def sampler_benchmark(sizes=UPDATE_SIZES, worker_counts=WORKER_COUNTS) -> dict[str, Any]:
    import os
    import platform

    return {
        "benchmark": "sampler",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "update": update_times(sizes),
        "publish": publish_times(worker_counts),
    }


BENCHMARKS = [Benchmark("sampler", "Skill-it update time by skills; time to publish a round to N workers",
                        lambda arguments: sampler_benchmark())]  # fmt: skip
