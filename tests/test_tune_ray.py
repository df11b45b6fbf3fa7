"""Skills-graph learning and eta/rounds tuning as Ray Tune trials on a local Ray.

Run: `.venv/bin/python -m pytest tests/test_tune_ray.py`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from conftest import small_config

from skillit_ray.config.job import load_config
from skillit_ray.tune.graph_runs import learn_graph
from skillit_ray.tune.search import tune_hyperparameters

TWO_SKILLS = ["data.train_skills=[lego_1, lego_2]", "mixture.graph=[[1, 0], [1, 1]]", "graph.steps=6"]


def test_two_skill_graph_end_to_end(ray_local, tmp_path):
    config = small_config(tmp_path, *TWO_SKILLS, "graph.measure_at_step=4", "graph.normalization=relative")
    result = learn_graph(config)
    document = json.loads((tmp_path / "run" / "graph" / "graph.json").read_text())
    for key in ("train_skills", "eval_skills", "method", "steps", "raw_deltas", "graph"):
        assert key in document
    assert document["train_skills"] == document["eval_skills"] == ["lego_1", "lego_2"]
    assert sorted(document["raw_deltas"]) == ["only_lego_1", "only_lego_2"]
    graph = np.asarray(document["graph"])
    assert graph.shape == (2, 2) and np.all(np.isfinite(graph))
    np.testing.assert_allclose(np.load(tmp_path / "run" / "graph" / "graph.npy"), graph)
    assert (tmp_path / "run" / "graph" / "graph_heatmap.png").stat().st_size > 0
    assert result["num_runs"] == 2
    # the learned graph feeds a training config directly
    trained_with = load_config(None, [f"mixture.graph_path={result['graph_json']}", *TWO_SKILLS[:1]])
    assert trained_with.mixture.graph_path.endswith("graph.json")


def test_failing_trial_is_reported_with_its_error(ray_local, tmp_path):
    # weights cut short: the directory passes every check before Ray, loading them fails inside the trial
    from skillit_ray.data.sources.registry import load_skill_tokenizer, resolve_skills
    from skillit_ray.train.model import build_model

    vocab_size = len(load_skill_tokenizer(resolve_skills(small_config(tmp_path, *TWO_SKILLS))))
    build_model("tiny", vocab_size, 64).save_pretrained(tmp_path / "base")
    weights = tmp_path / "base" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    config = small_config(tmp_path, *TWO_SKILLS, f"model.pretrained_path={tmp_path / 'base'}", "graph.max_failures=0")
    with pytest.raises(RuntimeError, match="(?s)graph runs failed: 2 of 2 trials.*SafetensorError"):
        learn_graph(config)


def test_missing_skill_fails_before_any_trial(tmp_path):
    config = small_config(tmp_path, "data.train_skills=[lego_1, lego_9]")
    with pytest.raises(ValueError, match="lego_9"):
        learn_graph(config)


def test_brute_force_needs_eval_skills_among_training_skills(tmp_path):
    config = small_config(
        tmp_path, "graph.method=brute-force", "mixture.setting=out_of_domain", "data.train_skills=[lego_1, lego_2]",
        "data.eval_skills=[lego_3]", "mixture.graph=[[1], [1]]",
    )  # fmt: skip
    with pytest.raises(ValueError, match="graph.method=linear"):
        learn_graph(config)


@pytest.mark.slow  # the grid test below writes and loads best_config.yaml too
def test_tune_writes_a_ready_to_run_best_config(ray_local, tmp_path):
    """Sampled etas (no grid edge to follow) and rounds [2, 3] with Skill-it pinned: the best of the trials."""
    config = small_config(
        tmp_path, "tune.num_samples=2", "tune.num_rounds_choices=[2, 3]", "tune.eta_min=0.1", "tune.eta_max=1.0",
        "tune.use_asha=false", "train.steps=6", "mixture.num_rounds=2", "train.eval_every_n_steps=3",
        "tune.candidates=[skillit]", "tune.extend_at_edges=false",
    )  # fmt: skip
    result = tune_hyperparameters(config)
    assert result["num_trials"] == 2 and result["num_errors"] == 0
    best = load_config(result["best_config"])
    assert 0.1 <= best.mixture.eta <= 1.0 and best.mixture.num_rounds in (2, 3)
    assert yaml.safe_load(open(result["best_config"]))["mixture"]["eta"] == pytest.approx(result["best"]["eta"])


def test_tune_follows_eta_past_the_grid_and_chooses_among_skillit_and_stratified(ray_local, tmp_path):
    """An eta grid of two: the best is at an edge, so one more eta is tried past it; stratified is scored on the
    same seed; the choice is the best of Skill-it's best and stratified, written with both objectives."""
    config = small_config(
        tmp_path, "tune.eta_grid=[0.1, 1.0]", "tune.num_rounds_choices=[2]", "tune.use_asha=false", "train.steps=6",
        "mixture.num_rounds=2", "train.eval_every_n_steps=3", "tune.max_edge_extensions=1",
    )  # fmt: skip
    result = tune_hyperparameters(config)
    trials = json.loads((tmp_path / "run" / "tune" / "trials.json").read_text())
    etas = sorted(trial["eta"] for trial in trials if trial["strategy"] == "skillit")
    assert etas[:1] == [pytest.approx(0.1 / 3)] or etas[-1:] == [pytest.approx(3.0)]  # past the better edge
    assert len(etas) == 3 and [trial["strategy"] for trial in trials].count("stratified") == 1
    choice = json.loads((tmp_path / "run" / "tune" / "candidates.json").read_text())
    objectives = choice["candidates"]
    assert set(objectives) == {choice["skillit_best"], "stratified"}
    assert choice["objective"] == min(objectives.values()) and objectives[choice["winner"]] == choice["objective"]
    assert load_config(result["best_config"]).mixture.strategy == ("stratified" if choice["winner"] == "stratified"
                                                                   else "skillit")  # fmt: skip


def test_trials_batch_the_short_runs_by_slot_or_as_asked():
    from skillit_ray.tune.graph_runs import trial_batches

    specs = [{"run_id": f"run_{index}"} for index in range(5)]
    config = load_config(None, ["graph.cpus_per_trial=1"])
    assert [len(batch) for batch in trial_batches(specs, config, cluster_cpus=2, cluster_gpus=0)] == [3, 2]
    assert [len(batch) for batch in trial_batches(specs, config, cluster_cpus=8, cluster_gpus=0)] == [1] * 5
    limited = load_config(None, ["graph.max_concurrent_trials=1"])
    assert [len(batch) for batch in trial_batches(specs, limited, cluster_cpus=8, cluster_gpus=0)] == [5]
    on_gpus = load_config(None, ["graph.gpus_per_trial=1"])
    assert [len(batch) for batch in trial_batches(specs, on_gpus, cluster_cpus=16, cluster_gpus=2)] == [3, 2]
    asked = load_config(None, ["graph.runs_per_trial=2"])
    batches = trial_batches(specs, asked, cluster_cpus=2, cluster_gpus=0)
    assert [[spec["run_id"] for spec in batch] for batch in batches] == [
        ["run_0", "run_1"],
        ["run_2", "run_3"],
        ["run_4"],
    ]


def test_batched_trials_learn_the_same_graph_as_one_run_per_trial(ray_local, tmp_path):
    graphs = {}
    for runs_per_trial in (1, 2):
        config = small_config(tmp_path, *TWO_SKILLS, f"graph.runs_per_trial={runs_per_trial}",
                              f"run.name=batched-{runs_per_trial}")  # fmt: skip
        result = learn_graph(config)
        assert result["num_trials"] == 2 // runs_per_trial
        graphs[runs_per_trial] = json.loads((tmp_path / f"batched-{runs_per_trial}/graph/graph.json").read_text())
    assert graphs[1]["graph"] == graphs[2]["graph"] and graphs[1]["raw_deltas"] == graphs[2]["raw_deltas"]
