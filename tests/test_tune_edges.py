"""The search follows the objective past a grid's edge, and the choice among Skill-it and the baselines.

Pure parts with toy objectives (no Ray); the Ray Tune search itself is in tests/test_tune_ray.py.
"""

from __future__ import annotations

import math

import pytest
from conftest import small_config

from skillit_ray.config.job import load_config
from skillit_ray.tune.edges import best_setting, choice_margin, extend_search, next_value
from skillit_ray.tune.search import apply_setting, candidate_settings, choice_line

BOUNDS = {"eta": (0.001, 1000.0), "num_rounds": (1, 100), "window": (1, 100)}


def test_next_value_steps_past_the_edge_where_the_best_sits():
    assert next_value({0.05: 3.0, 0.2: 2.0, 0.5: 1.0}, "min", 3.0, 0.001, 1000.0) == pytest.approx(1.5)
    assert next_value({0.05: 1.0, 0.2: 2.0, 0.5: 3.0}, "min", 3.0, 0.001, 1000.0) == pytest.approx(0.05 / 3)
    assert next_value({0.05: 3.0, 0.2: 1.0, 0.5: 2.0}, "min", 3.0, 0.001, 1000.0) is None  # inside: it turned
    assert next_value({0.05: 1.0, 0.5: 2.0}, "max", 3.0, 0.001, 1000.0) == pytest.approx(1.5)  # accuracy
    assert next_value({400.0: 2.0, 900.0: 1.0}, "min", 3.0, 0.001, 1000.0) is None  # the bound
    assert next_value({0.5: 1.0}, "min", 3.0, 0.001, 1000.0) is None  # one value: no edge to speak of
    assert next_value({3: 2.0, 6: 1.0}, "min", 3.0, 1, 100, integer=True) == 18
    assert next_value({1: 2.0, 2: 1.0}, "min", 1.2, 1, 100, integer=True) == 3  # at least one more
    assert next_value({1: 1.0, 2: 2.0}, "min", 3.0, 1, 100, integer=True) is None  # 0 rounds is below the bound


def test_extend_search_walks_to_the_optimum_past_the_grid_and_stops_where_it_turns():
    """A toy objective with its minimum at eta = 4 and rounds = 8: the grid [0.05, 0.2, 0.5] x rounds [2, 3] is
    extended x3 until the objective turns (1.5, 4.5, then 13.5 is worse), rounds past 3 to 9 (27 is worse)."""

    def objective(setting):
        return (math.log(setting["eta"]) - math.log(4.0)) ** 2 + (setting["num_rounds"] - 8) ** 2 / 10

    measured = []

    def run_settings(settings):
        measured.extend(settings)
        return [{**setting, "objective": objective(setting)} for setting in settings]

    first = run_settings([{"eta": eta, "num_rounds": rounds, "window": 3} for eta in (0.05, 0.2, 0.5)
                          for rounds in (2, 3)])  # fmt: skip
    results = extend_search(first, run_settings, "min", 3.0, BOUNDS, max_extensions=10)
    best = best_setting(results, "min")
    assert best["eta"] == pytest.approx(4.5) and best["num_rounds"] == 9
    assert {round(setting["eta"], 6) for setting in measured} >= {1.5, 4.5, 13.5}  # 13.5: where it turned
    assert not any(setting["window"] != 3 for setting in measured)  # one window tried: nothing to extend


def test_extend_search_leaves_a_sampled_eta_alone():
    results = [{"eta": 0.1, "num_rounds": 3, "window": 3, "objective": 2.0},
               {"eta": 1.0, "num_rounds": 3, "window": 3, "objective": 1.0}]  # fmt: skip
    assert extend_search(results, lambda settings: pytest.fail("ran"), "min", 3.0, BOUNDS, 4,
                         ["num_rounds", "window"]) == results  # fmt: skip


def test_candidates_follow_the_setting_and_the_given_proportions():
    pretraining = load_config(None, [])
    assert candidate_settings(pretraining) == [{"strategy": "stratified"}]
    finetuning = load_config(None, ["mixture.setting=finetuning", "data.eval_skills=[lego_3]",
                                    "mixture.proportions=[1, 1, 3]"])  # fmt: skip
    assert [setting["strategy"] for setting in candidate_settings(finetuning)] == [
        "stratified", "target_only", "proportions"]  # fmt: skip
    assert candidate_settings(load_config(None, ["tune.candidates=[skillit]"])) == []
    with pytest.raises(ValueError, match="mixture.proportions is empty"):
        candidate_settings(load_config(None, ["tune.candidates=[skillit, proportions]"]))
    listed = load_config(None, ["tune.candidates=[auto, skill_curriculum, stratified]"])  # any strategy, once
    assert candidate_settings(listed) == [{"strategy": "stratified"}, {"strategy": "skill_curriculum"}]
    with pytest.raises(ValueError, match="tune.candidates entry='best' is not valid; choose one of auto, skillit, "
                                         "target_only, proportions, .*curriculum"):  # fmt: skip
        candidate_settings(load_config(None, ["tune.candidates=[best]"]))
    with pytest.raises(ValueError, match="tune.candidates has ''"):
        load_config(None, ["tune.candidates=['']"])
    target = apply_setting(load_config(None, ["mixture.setting=finetuning", "data.eval_skills=[lego_3]"]),
                           {"strategy": "target_only"}, ["lego_1", "lego_2", "lego_3"])  # fmt: skip
    assert target.mixture.strategy == "target_only" and target.mixture.proportions == [0.0, 0.0, 1.0]


def test_the_choice_says_by_how_much_it_won_and_keeps_skillit_beside_it():
    losses = {"skillit(eta=4.5, rounds=5, window=3)": 5.25, "stratified": 5.66, "target_only": 5.21}
    assert choice_margin(losses, "target_only", "min") == {"runner_up": "skillit(eta=4.5, rounds=5, window=3)",
                                                           "margin": pytest.approx(0.04)}  # fmt: skip
    assert choice_margin({"a": 0.8, "b": 0.9}, "b", "max") == {"runner_up": "a", "margin": pytest.approx(0.1)}
    assert choice_margin({"skillit": 1.0}, "skillit", "min") == {"runner_up": None, "margin": 0.0}
    choice = {"candidates": {"skillit(eta=0.5)": 5.6, "stratified": 5.4, "target_only": 5.2}, "metric": "mean_val_loss",
              "winner": "target_only", "skillit_best": "skillit(eta=0.5)"}  # fmt: skip
    choice.update(choice_margin(choice["candidates"], "target_only", "min"))
    assert choice_line(choice) == ("the choice is target_only (mean_val_loss 5.2000), ahead of stratified (5.4000) by "
                                   "0.2000; Skill-it's best skillit(eta=0.5) 5.6000")  # fmt: skip


def test_a_listed_baseline_that_cannot_run_is_refused_before_ray_starts(tmp_path, monkeypatch):
    """`random` (the given fixed mixture) without mixture.proportions: the tuner says so before any trial."""
    import skillit_ray.tune.search

    def no_ray(*_):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(skillit_ray.tune.search, "connect_ray", no_ray)
    config = small_config(tmp_path, "tune.candidates=[skillit, random]")
    with pytest.raises(ValueError, match="mixture.strategy=random needs mixture.proportions"):
        skillit_ray.tune.search.tune_hyperparameters(config)


def test_the_pipeline_checks_its_candidates_before_learning_the_graph(tmp_path, monkeypatch):
    """A candidate that cannot run fails the pipeline at once, not after the graph's short runs."""
    import skillit_ray.tune.pipeline

    def no_graph(*_):
        raise AssertionError("the graph's runs started")

    monkeypatch.setattr(skillit_ray.tune.pipeline, "learn_graph", no_graph)
    for candidate, message in (("random", "mixture.strategy=random needs mixture.proportions"),
                               ("stratify", "tune.candidates entry='stratify' is not valid")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            skillit_ray.tune.pipeline.run_pipeline(small_config(tmp_path, f"tune.candidates=[auto, {candidate}]"))
