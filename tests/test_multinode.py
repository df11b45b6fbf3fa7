"""Multi-node: two Ray nodes from `ray.cluster_utils.Cluster` (separate raylets on this machine),
one training worker on each, the sampler actor anywhere. Marked slow (`make test-slow`): it starts
its own cluster, so it cannot share the suite's local Ray.

Run: `.venv/bin/python -m pytest -m slow tests/test_multinode.py`.
"""

from __future__ import annotations

import json

import pytest
from conftest import small_config

from skillit_ray.mixture.quotas import round_quotas
from skillit_ray.train.launch import run_training

pytestmark = pytest.mark.slow


def test_two_node_run_places_one_worker_per_node_and_keeps_exact_quotas(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"node_a": 1}})
    cluster.add_node(num_cpus=1, resources={"node_b": 1})
    try:
        ray.init(address=cluster.address)
        config = small_config(
            tmp_path, "scaling.num_workers=2", "scaling.cpus_per_worker=1", "run.name=two-nodes", "train.steps=8",
            "mixture.num_rounds=2",
        )  # fmt: skip
        run_training(config)
        rounds = [json.loads(line) for line in (tmp_path / "two-nodes" / "mixture.jsonl").read_text().splitlines()]
        assert len(rounds) == 2
        for record in rounds:
            assert record["num_ranks_agreeing"] == 2
            assert record["achieved_counts"] == round_quotas(record["weights"], 4 * config.train.batch_size).tolist()
        # 1 CPU per node and 1 CPU per worker: the two workers can only have run on different nodes
        assert len([node for node in ray.nodes() if node["Alive"]]) == 2
    finally:
        ray.shutdown()
        cluster.shutdown()
