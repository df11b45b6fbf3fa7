"""Every output goes through storage: graph and tune files land under a file:// URI like training outputs.

`graph.output_path` moves only the graph files; tune's best_config.yaml and trials.json stay under
`<run.storage_path>/<run.name>/tune`. Run: `.venv/bin/python -m pytest tests/test_outputs_storage.py`.
"""

from __future__ import annotations

import json

import numpy as np
import yaml
from conftest import small_config

from skillit_ray.tune.graph_runs import learn_graph
from skillit_ray.tune.search import tune_hyperparameters

TWO_SKILLS = ["data.train_skills=[lego_1, lego_2]", "mixture.graph=[[1, 0], [1, 1]]", "graph.steps=4"]


def test_graph_and_tune_outputs_go_through_uri_storage(ray_local, tmp_path):
    storage_uri, graph_uri = f"file://{tmp_path}/runs", f"file://{tmp_path}/elsewhere/graph"
    config = small_config(tmp_path, *TWO_SKILLS, f"run.storage_path={storage_uri}", f"graph.output_path={graph_uri}")
    graph_result = learn_graph(config)
    assert graph_result["graph_json"] == f"{graph_uri}/graph.json"
    document = json.loads((tmp_path / "elsewhere" / "graph" / "graph.json").read_text())
    np.testing.assert_allclose(np.load(tmp_path / "elsewhere" / "graph" / "graph.npy"), document["graph"])
    assert (tmp_path / "elsewhere" / "graph" / "graph_heatmap.png").stat().st_size > 0

    tuned = small_config(
        tmp_path, *TWO_SKILLS, f"run.storage_path={storage_uri}", f"graph.output_path={graph_uri}",
        f"mixture.graph_path={graph_result['graph_json']}", "tune.num_samples=1", "tune.use_asha=false",
        "train.steps=4", "mixture.num_rounds=2", "tune.num_rounds_choices=[2]", "train.eval_every_n_steps=2",
        "tune.candidates=[skillit]",  # the storage is the point here; the candidates are tested in test_tune_ray
    )  # fmt: skip
    result = tune_hyperparameters(tuned)
    run_directory = tmp_path / "runs" / "run"
    assert result["best_config"] == f"{storage_uri}/run/tune/best_config.yaml"
    best = yaml.safe_load((run_directory / "tune" / "best_config.yaml").read_text())
    assert best["mixture"]["eta"] == result["best"]["eta"]
    assert len(json.loads((run_directory / "tune" / "trials.json").read_text())) == 1
    assert not (tmp_path / "elsewhere" / "tune").exists()  # graph.output_path does not move tune's output
