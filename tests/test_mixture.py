"""Pure Skill-it math, quotas and baselines (no Ray). Run: `.venv/bin/python -m pytest tests/test_mixture.py`."""

import numpy as np
import pytest

from skillit_ray.data.sources import registry as mixture
from skillit_ray.mixture.quotas import (
    rank_row_range,
    round_quotas,
    round_skill_schedule,
    split_quotas_across_ranks,
    step_rank_quotas,
)
from skillit_ray.mixture.registry import build_strategy
from skillit_ray.mixture.strategies.curriculum import curriculum_pool_skills, curriculum_round_indices
from skillit_ray.mixture.update import paper_binary_graph, skillit_weights

LEGO_GRAPH = [[1, 0, 0, 0, 0], [1, 1, 1, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1]]


def softmax(x):
    e = np.exp(x - np.max(x))
    return e / e.sum()


def test_graph_of_ones_gives_uniform_weights():
    losses = [[3.0, 0.1, 7.0], [1.0, 2.0, 0.5]]
    weights = skillit_weights(np.ones((3, 3)), losses, eta=0.8, window=2)
    np.testing.assert_allclose(weights, np.full(3, 1 / 3), atol=1e-15)


def test_identity_graph_is_softmax_of_eta_times_loss():
    losses = [0.3, 1.2, 2.5, 0.0]
    weights = skillit_weights(np.eye(4), [losses], eta=0.7, window=1)
    np.testing.assert_allclose(weights, softmax(0.7 * np.array(losses)), rtol=1e-12)


def test_small_eta_tends_to_the_prior():
    prior = np.array([1.0, 2.0, 5.0])
    weights = skillit_weights(np.random.default_rng(0).random((3, 3)), [[4.0, 1.0, 9.0]], 1e-12, 1, prior=prior)
    np.testing.assert_allclose(weights, prior / prior.sum(), rtol=1e-9)


def test_window_uses_only_the_last_w_evaluations():
    history = [[100.0, 0.0], [1.0, 2.0], [3.0, 1.0]]
    weights = skillit_weights(np.eye(2), history, eta=0.5, window=2)
    np.testing.assert_allclose(weights, softmax(0.5 * np.array([4.0, 3.0])), rtol=1e-12)
    # a window longer than the history uses all of it
    np.testing.assert_allclose(
        skillit_weights(np.eye(2), history, eta=0.5, window=10), softmax(0.5 * np.array([104.0, 3.0])), rtol=1e-12
    )


def test_mean_equals_sum_with_eta_divided_by_window():
    rng = np.random.default_rng(1)
    graph, history = rng.random((4, 3)), rng.random((5, 3)).tolist()
    mean_weights = skillit_weights(graph, history, eta=0.9, window=3, reduce="mean")
    sum_weights = skillit_weights(graph, history, eta=0.9 / 3, window=3, reduce="sum")
    np.testing.assert_allclose(mean_weights, sum_weights, rtol=1e-12)


def test_empty_history_gives_the_initial_mixture_softmax_of_row_sums():
    graph = paper_binary_graph(LEGO_GRAPH)
    weights = skillit_weights(graph, [], eta=0.5, window=3)
    # reference section 3: p ~ exp(0.5 * [1, 2.5, 1, 1, 1]) = [0.163, 0.346, 0.163, 0.163, 0.163]
    np.testing.assert_allclose(weights, [0.163, 0.346, 0.163, 0.163, 0.163], atol=1e-3)


def test_log_sum_exp_survives_huge_logits():
    weights = skillit_weights(np.eye(2), [[5000.0, 4999.0]], eta=100.0, window=1)
    assert np.all(np.isfinite(weights)) and weights[0] == pytest.approx(1.0)


def _float64_rule(graph, history, eta, window):
    logits = eta * (np.asarray(graph) @ np.sum(history[-window:], axis=0))
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


@pytest.mark.parametrize("scale, eta", [(1.0, 0.01), (1.0, 0.1), (1.0, 0.5), (1e-3, 0.5), (1e-3, 5.0)])
def test_a_large_graph_multiplies_in_float32_within_1e_6_of_the_float64_rule(scale, eta):
    from skillit_ray.mixture.update import FLOAT32_FROM_ENTRIES, SkillitUpdate

    num_skills = int(np.sqrt(FLOAT32_FROM_ENTRIES))
    generator = np.random.default_rng(3)
    graph = generator.uniform(-0.2, 1.0, (num_skills, num_skills)) * scale  # scale 1: logits of ~1e4 * eta
    history = [generator.uniform(2.0, 10.0, num_skills) for _ in range(4)]
    update = SkillitUpdate(graph, eta, window=3)
    assert update.matrix.dtype == np.float32
    expected = _float64_rule(graph, history, eta, 3)
    np.testing.assert_allclose(update.weights(history), expected, rtol=0, atol=1e-6)
    assert SkillitUpdate(graph[:10, :10], eta, window=3).matrix.dtype == np.float64  # small graphs: unchanged


def test_paper_binary_graph_only_touches_off_diagonal_ones():
    graph = paper_binary_graph([[1, 1, -0.3], [1, 1, 0.7], [2.0, 1, 1]])
    np.testing.assert_array_equal(graph, [[1, 0.5, -0.3], [0.5, 1, 0.7], [2.0, 0.5, 1]])


def test_out_of_domain_graph_k_by_m():
    graph = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    weights = skillit_weights(graph, [[1.0, 0.5]], eta=1.0, window=1)
    np.testing.assert_allclose(weights, softmax(graph @ [1.0, 0.5]), rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"graph": [[1.0, np.nan]]}, "finite"),
        ({"graph": [1.0, 2.0]}, "k x m"),
        ({"eta": 0.0}, "eta"),
        ({"eta": -1.0}, "eta"),
        ({"window": 0}, "window"),
        ({"loss_history": [[1.0, np.inf]]}, "finite"),
        ({"loss_history": [[1.0, 2.0, 3.0]]}, "2 entries"),
        ({"prior": [0.0, 1.0]}, "prior"),
        ({"prior": [1.0]}, "prior"),
        ({"reduce": "max"}, "reduce"),
    ],
)
def test_bad_input_names_the_value(kwargs, message):
    arguments = {"graph": np.eye(2), "loss_history": [[1.0, 2.0]], "eta": 0.5, "window": 1}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        skillit_weights(**arguments)


@pytest.mark.parametrize(
    "weights, total",
    [
        ([1e-9, 1.0, 1.0], 7),
        ([1.0, 1.0, 1.0], 10),
        ([0.5, 0.5], 1),
        ([0.0, 1.0, 0.0, 1.0], 5),
        (np.random.default_rng(2).random(1000), 12345),
        (np.r_[np.full(999, 1e-9), 1.0], 1000),
        ([1.0], 0),
    ],
)
def test_round_quotas_sum_exactly_and_stay_close(weights, total):
    quotas = round_quotas(weights, total)
    probabilities = np.asarray(weights) / np.sum(weights)
    assert quotas.sum() == total and quotas.dtype == np.int64
    assert np.all(np.abs(quotas - probabilities * total) < 1.0)
    assert np.all(quotas[probabilities == 0] == 0)


def test_round_quotas_ties_go_to_lower_index_and_bad_weights_fail():
    np.testing.assert_array_equal(round_quotas([1, 1, 1], 2), [1, 1, 0])
    for bad in ([0, 0], [-1, 2], [np.nan, 1]):
        with pytest.raises(ValueError):
            round_quotas(bad, 10)


def test_rank_split_is_disjoint_complete_and_balanced():
    quotas = round_quotas([0.1, 0.6, 0.3], 64 * 10)
    schedule = round_skill_schedule(quotas, seed=3, round_index=2)
    np.testing.assert_array_equal(np.bincount(schedule, minlength=3), quotas)
    for world_size in (1, 2, 3, 8):
        total = np.zeros(3, dtype=int)
        for step in range(10):
            step_indices = schedule[step * 64 : (step + 1) * 64]
            counts = split_quotas_across_ranks(step_indices, 3, world_size)
            np.testing.assert_array_equal(counts.sum(axis=0), np.bincount(step_indices, minlength=3))
            assert counts.sum(axis=1).max() - counts.sum(axis=1).min() <= 1
            total += counts.sum(axis=0)
        np.testing.assert_array_equal(total, quotas)


def test_step_quotas_deterministic_in_seed_and_round():
    a = step_rank_quotas([0.2, 0.8], 320, 32, 4, 2, seed=7, round_index=1)
    b = step_rank_quotas([0.2, 0.8], 320, 32, 4, 2, seed=7, round_index=1)
    np.testing.assert_array_equal(a, b)
    assert a.sum() == 32 and a.shape == (2, 2)
    assert not np.array_equal(round_skill_schedule([64, 256], 7, 1), round_skill_schedule([64, 256], 8, 1))
    assert not np.array_equal(round_skill_schedule([64, 256], 7, 1), round_skill_schedule([64, 256], 7, 2))


def make(strategy, **overrides):
    arguments = dict(
        setting="pretraining",
        num_train_skills=3,
        num_eval_skills=3,
        graph=np.array([[1.0, 0.0, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]]),
        eta=0.5,
        window=3,
        loss_reduction="auto",
        num_rounds=4,
        proportions=[],
        prior=[],
    )
    arguments.update(overrides)
    return build_strategy(strategy, **arguments)


def test_static_equals_initial_mixture_every_round():
    static = make("static")
    initial = skillit_weights(static.graph, [], 0.5, 3)
    static.observe(0, [3.0, 1.0, 2.0])
    for round_index in range(4):
        np.testing.assert_allclose(static.weights_for_round(round_index), initial)


def test_online_skillit_moves_to_the_high_loss_skill_and_no_graph_uses_identity():
    online = make("skillit")
    no_graph = make("no_graph")
    for strategy in (online, no_graph):
        strategy.observe(0, [0.1, 0.1, 5.0])
    assert online.weights_for_round(1)[2] > online.weights_for_round(0)[2]
    np.testing.assert_allclose(no_graph.weights_for_round(1), softmax(0.5 * np.array([0.1, 0.1, 5.0])))


def test_finetuning_defaults_to_mean_and_random_uses_proportions():
    assert make("skillit", setting="finetuning").reduce == "mean"
    random = make("random", proportions=[1, 1, 3])
    np.testing.assert_allclose(random.weights_for_round(5), [0.2, 0.2, 0.6])


def test_stratified_uniform_in_pretraining_and_over_prerequisites_otherwise():
    np.testing.assert_allclose(make("stratified").weights_for_round(0), np.full(3, 1 / 3))
    graph = np.array([[0.0], [0.7], [1.0]])  # fine-tuning on one target column
    weights = make("stratified", setting="finetuning", num_eval_skills=1, graph=graph).weights_for_round(0)
    np.testing.assert_allclose(weights, [0, 0.5, 0.5])


def test_skill_curriculum_orders_by_initial_loss_and_anticurriculum_reverses():
    curriculum = make("skill_curriculum", num_rounds=4)
    anti = make("skill_anticurriculum", num_rounds=4)
    for strategy in (curriculum, anti):
        strategy.observe(0, [2.0, 0.5, 1.0])  # easy -> hard: skill 1, 2, 0
    np.testing.assert_allclose(curriculum.weights_for_round(0), [0, 1, 0])
    np.testing.assert_allclose(curriculum.weights_for_round(1), [0, 0.4, 0.6])
    np.testing.assert_allclose(curriculum.weights_for_round(2), [0.6, 0.2, 0.2])
    np.testing.assert_allclose(curriculum.weights_for_round(3), np.full(3, 1 / 3))
    np.testing.assert_allclose(anti.weights_for_round(0), [1, 0, 0])


def test_state_dict_round_trip_continues_identically():
    first = make("skillit")
    for step, losses in enumerate([[1.0, 2.0, 3.0], [0.5, 1.5, 2.0]]):
        first.observe(step, losses)
    second = make("skillit")
    second.load_state_dict(first.state_dict())
    for strategy in (first, second):
        strategy.observe(5, [0.2, 0.3, 0.9])
    np.testing.assert_array_equal(first.weights_for_round(2), second.weights_for_round(2))
    with pytest.raises(ValueError, match="strategy"):
        make("random", proportions=[1, 1, 1]).load_state_dict(first.state_dict())


def test_sample_curriculum_paces_easy_to_hard():
    losses = np.arange(100, dtype=float)  # sample i has loss i
    rounds = curriculum_round_indices(losses, num_rounds=5, samples_per_round=10, num_epochs=5, seed=0)
    assert rounds[0].max() < 20 and len(set(rounds[0])) == 10  # first fifth, without replacement
    assert max(r.max() for r in rounds) >= 80
    anti = curriculum_round_indices(losses, 5, 10, 5, seed=0, anticurriculum=True)
    assert anti[0].min() >= 80


def test_curriculum_pool_holds_exact_shares_in_a_seeded_order():
    pool = curriculum_pool_skills([1, 1, 1, 3, 5], pool_size=110, seed=4)
    np.testing.assert_array_equal(np.bincount(pool, minlength=5), [10, 10, 10, 30, 50])
    np.testing.assert_array_equal(pool, curriculum_pool_skills([1, 1, 1, 3, 5], 110, seed=4))
    assert not np.array_equal(pool, curriculum_pool_skills([1, 1, 1, 3, 5], 110, seed=5))
    assert not np.array_equal(pool, np.sort(pool))  # shuffled, not grouped by skill
    with pytest.raises(ValueError, match="pool_size=0"):
        curriculum_pool_skills([1, 1], 0, seed=0)


@pytest.mark.parametrize("num_rows, world_size", [(8, 1), (8, 3), (7, 2), (64, 8)])
def test_rank_row_ranges_tile_the_step(num_rows, world_size):
    ranges = [rank_row_range(num_rows, world_size, rank) for rank in range(world_size)]
    assert ranges[0][0] == 0 and ranges[-1][1] == num_rows
    assert all(previous[1] == following[0] for previous, following in zip(ranges, ranges[1:]))
    sizes = [end - start for start, end in ranges]
    assert max(sizes) - min(sizes) <= 1


def test_build_strategy_errors():
    with pytest.raises(ValueError, match="at least one training skill"):
        make("skillit", num_train_skills=0)
    with pytest.raises(ValueError, match="rows"):
        make("skillit", graph=np.eye(2))
    with pytest.raises(ValueError, match="identity default"):
        make("skillit", graph=None, num_eval_skills=2)
    with pytest.raises(ValueError, match="proportions"):
        make("random", proportions=[1, 1])


def test_resolve_eval_skills_per_setting():
    skills = ["a", "b", "c"]
    assert mixture.resolve_eval_skills("pretraining", skills, [], []) == skills
    assert mixture.resolve_eval_skills("finetuning", skills, [], ["c"]) == ["c"]
    assert mixture.resolve_eval_skills("out_of_domain", skills, ["x", "y"], []) == ["x", "y"]
    with pytest.raises(ValueError, match="not training skills"):
        mixture.resolve_eval_skills("finetuning", skills, [], ["zz"])
    with pytest.raises(ValueError, match="disjoint"):
        mixture.resolve_eval_skills("out_of_domain", skills, ["a"], [])
