"""Skills-graph learning and eta/rounds tuning as Ray Tune trials on a local Ray.

Run: `.venv/bin/python -m pytest tests/test_tune_ray.py`.
"""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import yaml
from conftest import small_config
from test_tracking import tensorboard_scalars, wandb_records

from skillit_ray.config.job import load_config
from skillit_ray.tune.graph_runs import learn_graph
from skillit_ray.tune.progress import trials_line, trials_remaining_s
from skillit_ray.tune.search import tune_hyperparameters
from skillit_ray.tune.trial_tracking import graph_trial_records, search_trial_record

TWO_SKILLS = ["data.train_skills=[lego_1, lego_2]", "mixture.graph=[[1, 0], [1, 1]]", "graph.steps=6"]


TUNE_NOISE = ("Configuration for experiment", "To visualize your results with TensorBoard", "Trial status")
"""What Ray Tune prints at a fit unless quiet (its experiment table, TensorBoard hint and status table)."""


def test_two_skill_graph_end_to_end(ray_local, tmp_path, capsys):
    config = small_config(tmp_path, *TWO_SKILLS, "graph.measure_at_step=4", "graph.normalization=relative",
                          "tracking.sinks=[tensorboard, wandb]")  # fmt: skip
    result = learn_graph(config)
    printed = capsys.readouterr().out
    assert "[graph] trials 2/2 done" in printed and not any(noise in printed for noise in TUNE_NOISE)
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
    # each short run a TensorBoard run and a W&B run: losses at step 0 and the measured step, the drop at the end
    scalars = tensorboard_scalars(tmp_path / "run" / "graph" / "tensorboard" / "only_lego_1")
    assert [event.step for event in scalars.Scalars("eval/mean_val_loss")] == [0, 4, 6]
    [drop] = scalars.Scalars("graph/loss_drop/lego_1")
    assert drop.value == pytest.approx(document["raw_deltas"]["only_lego_1"][0])  # the raw drop graph.json holds
    runs = {}
    for path in (tmp_path / "run" / "graph" / "wandb").glob("offline-run-*/run-*.wandb"):
        for record in wandb_records(path):
            if record.WhichOneof("record_type") == "run":
                runs[record.run.display_name] = (record.run.run_group, record.run.job_type)
    assert runs == {"only_lego_1": ("run-graph", "graph"), "only_lego_2": ("run-graph", "graph")}


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


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # SQLAlchemy's, inside MLflow's store
def test_tune_follows_eta_past_the_grid_and_chooses_among_skillit_and_the_baselines(
    ray_local, tmp_path, mlflow_database, capsys, caplog
):
    """An eta grid of two: the best is at an edge, so one more eta is tried past it; stratified (auto) and a
    listed strategy, skill_curriculum, are scored on the same seed; the choice is the best of Skill-it's best
    and the baselines, written with every objective. Every trial is an MLflow run under the phase's run, and
    each fit has its progress lines."""
    shutil.copy(mlflow_database, tmp_path / "mlflow.db")
    caplog.set_level(logging.INFO, logger="skillit_ray")
    config = small_config(
        tmp_path, "tune.eta_grid=[0.1, 1.0]", "tune.num_rounds_choices=[2]", "tune.use_asha=false", "train.steps=6",
        "mixture.num_rounds=2", "train.eval_every_n_steps=3", "tune.max_edge_extensions=1", "tracking.sinks=[mlflow]",
        "tune.candidates=[auto, skill_curriculum]",
    )  # fmt: skip
    result = tune_hyperparameters(config)
    printed = capsys.readouterr().out
    for fit in ("search] trials 2/2", "edge] trials 1/1", "baselines] trials 2/2"):
        assert f"[tune {fit} done" in printed
    assert not any(noise in printed for noise in TUNE_NOISE)
    trials = json.loads((tmp_path / "run" / "tune" / "trials.json").read_text())
    etas = sorted(trial["eta"] for trial in trials if trial["strategy"] == "skillit")
    assert etas[:1] == [pytest.approx(0.1 / 3)] or etas[-1:] == [pytest.approx(3.0)]  # past the better edge
    strategies = [trial["strategy"] for trial in trials]
    assert len(etas) == 3 and strategies.count("stratified") == strategies.count("skill_curriculum") == 1
    choice = json.loads((tmp_path / "run" / "tune" / "candidates.json").read_text())
    objectives = choice["candidates"]
    assert set(objectives) == {choice["skillit_best"], "stratified", "skill_curriculum"}
    assert choice["objective"] == min(objectives.values()) and objectives[choice["winner"]] == choice["objective"]
    runner_up = sorted(set(objectives) - {choice["winner"]}, key=objectives.get)[0]  # by how much it won
    assert choice["runner_up"] == runner_up and choice["margin"] == objectives[runner_up] - choice["objective"] >= 0
    assert (f"[tune] the choice is {choice['winner']} (mean_val_loss {choice['objective']:.4f}), ahead of {runner_up} "
            f"({objectives[runner_up]:.4f}) by {choice['margin']:.4f}: ") in caplog.text  # fmt: skip
    strategy = choice["winner"] if choice["winner"] in ("stratified", "skill_curriculum") else "skillit"
    assert load_config(result["best_config"]).mixture.strategy == strategy
    from mlflow.tracking import MlflowClient

    client = MlflowClient(config.tracking.resolved_mlflow_uri(config.run.storage_path))
    [parent] = client.search_runs(["1"], filter_string="attributes.run_name = 'run-tune'")
    assert parent.info.status == "FINISHED" and parent.data.params["choice.winner"] == choice["winner"]
    artifacts = {artifact.path for artifact in client.list_artifacts(parent.info.run_id)}
    assert artifacts == {"best_config.yaml", "candidates.json", "trials.json"}
    children = client.search_runs(["1"], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    fits = sorted(child.data.params["fit"] for child in children)
    assert fits == ["baselines", "baselines", "edge", "search", "search"]
    objectives = {child.info.run_name: child.data.metrics["objective"] for child in children}
    assert objectives[choice["winner"]] == pytest.approx(choice["objective"]) and len(objectives) == 5
    assert all(child.info.status == "FINISHED" and "eval/mean_val_loss" in child.data.metrics for child in children)


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


# ----------------------------------------------------------------------------- progress lines and trial records


def test_the_trials_line_counts_done_and_failed_trials_with_an_eta():
    # trials of 40 s on 2 slots: the running ones end in 10 s and 30 s, then 3 pending ones at 50, 70 and 90 s
    assert trials_remaining_s(40.0, [30.0, 10.0], num_pending=3, num_slots=2) == 90.0
    assert trials_remaining_s(40.0, [], num_pending=2, num_slots=4) == 40.0  # side by side on free slots
    assert trials_remaining_s(40.0, [50.0], num_pending=0, num_slots=1) == 0.0  # overdue: ends any moment
    assert trials_line("graph", (2, 5, 0), 40.0, 60.0) == "[graph] trials 2/5 done, 40s elapsed, ETA 1m00s"
    assert trials_line("tune search", (0, 4, 0), 31.0, None) == "[tune search] trials 0/4 done, 31s elapsed, ETA ?"
    assert trials_line("graph", (3, 3, 1), 62.0, 0.0, "only_a: failed: boom") == (
        "[graph] trials 3/3 done (1 failed), 1m02s elapsed, ETA 0s | only_a: failed: boom"
    )


def test_a_search_trial_is_recorded_with_its_setting_history_and_status():
    config = load_config(None, ["train.steps=20", "tune.seeds=[0, 1]"])
    trial = {"eta": 0.3, "num_rounds": 2, "window": 3}
    final = {"objective": 1.4, "per_seed": [1.3, 1.5], "final": True, "val_loss": [1.2, 1.6], "accuracy": None}
    results = [{"objective": 2.0, "step": 10, "final": False}, {"objective": 1.5, "step": 20, "final": False}, final]
    [record] = search_trial_record(config, ["a", "b"], "search", trial, results, "")
    assert (record.name, record.status, record.step) == ("skillit(eta=0.3, rounds=2, window=3)", "FINISHED", 20)
    assert record.params == {"strategy": "skillit", "eta": 0.3, "num_rounds": 2, "window": 3, "seeds": "0,1",
                             "fit": "search"}  # fmt: skip
    assert record.history == [(10, {"objective": 2.0})]  # the report at the last step is the final result's
    assert record.metrics == pytest.approx({"objective": 1.4, "objective/seed_0": 1.3, "objective/seed_1": 1.5,
                                            "eval/val_loss/a": 1.2, "eval/val_loss/b": 1.6,
                                            "eval/mean_val_loss": 1.4})  # fmt: skip
    [stopped] = search_trial_record(config, ["a", "b"], "search", trial, results[:1], "")
    assert (stopped.status, stopped.metrics, stopped.history) == ("KILLED", {}, [(10, {"objective": 2.0})])
    assert stopped.headline.endswith("stopped early (mean_val_loss 2.0000 at step 10)")
    [failed] = search_trial_record(config, ["a", "b"], "baselines", {"setting": {"strategy": "stratified"}}, [], "boom")
    assert (failed.name, failed.status, failed.params["fit"], failed.headline) == (
        "stratified",
        "FAILED",
        "baselines",
        "stratified: failed: boom",
    )


def test_a_graph_trial_records_each_short_run_with_its_mixture_and_losses():
    config = load_config(None, ["graph.steps=6", "graph.measure_at_step=4"])
    trial = {"specs": [{"run_id": "only_a", "proportions": [1.0, 0.0]}, {"run_id": "only_b", "proportions": [0, 1]}]}
    losses = {"initial_losses": [3.0, 3.0], "losses_after": [2.0, 2.5], "final_losses": [1.5, 2.4]}
    records = graph_trial_records(config, (["a", "b"], ["a", "b"]), trial, [{"measurements": {"only_a": losses}}], "")
    first, missing = records
    assert first.params == {"proportion/a": 1.0, "proportion/b": 0.0, "graph.steps": 6, "graph.measure_at_step": 4}
    assert [step for step, _ in first.history] == [0, 4] and first.history[1][1]["eval/mean_val_loss"] == 2.25
    assert first.metrics["graph/loss_drop/b"] == 0.5 and first.metrics["eval/val_loss/a"] == 1.5 and first.step == 6
    assert missing.status == "FAILED"  # a batch's run without its measurement (the trial failed)
