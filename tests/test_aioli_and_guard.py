"""Beyond the paper: the collapse guard (mixture.uniform_mix) and Aioli's online re-estimation of the
interaction matrix (strategy "aioli"), on toy arrays. Run: `.venv/bin/python -m pytest tests/test_aioli_and_guard.py`.
"""

from __future__ import annotations

import numpy as np
import pytest

from skillit_ray.mixture.registry import build_strategy
from skillit_ray.mixture.strategies.aioli import (
    AioliMixture,
    interaction_matrix,
    normalize_interactions,
    smoothed_one_hot,
)
from skillit_ray.mixture.strategy import mix_with_uniform

OPTIONS = dict(
    setting="pretraining", num_train_skills=3, num_eval_skills=3, window=1, loss_reduction="auto", num_rounds=3,
    proportions=[], prior=[],
)  # fmt: skip


def test_the_guard_bounds_every_weight_from_below():
    np.testing.assert_allclose(mix_with_uniform([1.0, 0.0, 0.0, 0.0], 0.2), [0.85, 0.05, 0.05, 0.05])
    np.testing.assert_allclose(mix_with_uniform([0.3, 0.7], 0.0), [0.3, 0.7])
    with pytest.raises(ValueError, match="uniform_mix"):
        mix_with_uniform([1.0], 1.5)
    guarded = build_strategy("skillit", graph=np.eye(3) * 10, eta=5.0, uniform_mix=0.3, **OPTIONS)
    guarded.observe(0, [9.0, 1.0, 1.0])
    weights = guarded.weights_for_round(1)
    assert weights.min() >= 0.1 - 1e-12 and abs(weights.sum() - 1) < 1e-12


def test_learn_params_recovers_the_interaction_matrix_through_smoothed_probes():
    truth = np.array([[0.3, 0.0, 0.1], [0.05, 0.2, 0.0], [0.1, 0.1, 0.4]])  # rows: evaluation, columns: training
    losses, after, order = np.array([6.0, 6.0, 6.0]), [], [2, 0, 1, 1, 2, 0]
    for skill in order:
        losses = losses - truth @ smoothed_one_hot(3, skill, 0.6)
        after.append(losses.copy())
    np.testing.assert_allclose(interaction_matrix([6.0, 6.0, 6.0], after, order, 0.6), truth, atol=1e-12)
    normalized = normalize_interactions(truth - 0.1)
    assert normalized.min() == 0 and abs(normalized.sum() - 1) < 1e-12


def test_aioli_probes_then_trains_on_the_skill_that_helps_everyone():
    strategy = build_strategy(
        "aioli", graph=None, eta=5.0, total_steps=60, options={"rounds_per_update": 6}, seed=1,
        **{**OPTIONS, "num_rounds": 12},
    )  # fmt: skip
    assert isinstance(strategy, AioliMixture)
    truth = np.array([[0.2, 0.0, 0.2], [0.0, 0.2, 0.2], [0.0, 0.0, 0.2]])  # training on skill 2 helps everyone
    losses = np.full(3, 6.0)
    strategy.observe(0, losses)
    for round_index in range(12):
        weights = strategy.weights_for_round(round_index)
        position = round_index % 6
        if position < 3:
            np.testing.assert_allclose(
                weights, smoothed_one_hot(3, strategy.probe_order(round_index // 6)[position], 0.5)
            )
        else:
            assert np.argmax(weights) == 2
        losses = losses - truth @ weights
        strategy.observe((round_index + 1) * 5, losses)
    with pytest.raises(ValueError, match="mixture.aioli.rounds_per_update=3 must exceed"):
        build_strategy("aioli", graph=None, eta=0.2, total_steps=60, options={"rounds_per_update": 3}, **OPTIONS)
