"""The worked example of docs/architecture.md: a strategy in one module, found by the registry, typed options,
and a whole run. Run: `.venv/bin/python -m pytest tests/test_strategy_loss_proportional.py`.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import small_config

from skillit_ray.mixture.registry import build_strategy, strategies
from skillit_ray.mixture.strategies.loss_proportional import LossProportionalMixture
from skillit_ray.train.local import run_local_training
from skillit_ray.train.preflight import check_config

INPUTS = dict(setting="pretraining", num_train_skills=3, num_eval_skills=3)


def test_the_registry_finds_it_with_its_options():
    assert strategies()["loss_proportional"] is LossProportionalMixture
    strategy = build_strategy("loss_proportional", graph=None, options={"temperature": 0.5}, **INPUTS)
    assert strategy.temperature == 0.5


def test_weights_follow_the_latest_losses():
    plain = build_strategy("loss_proportional", graph=None, **INPUTS)
    greedy = build_strategy("loss_proportional", graph=None, options={"temperature": 0.5}, **INPUTS)
    for strategy in (plain, greedy):
        strategy.observe(0, [9.0, 9.0, 9.0])
        strategy.observe(4, [1.0, 2.0, 1.0])
    np.testing.assert_allclose(plain.weights_for_round(1), [0.25, 0.5, 0.25])
    np.testing.assert_allclose(greedy.weights_for_round(1), [1 / 6, 4 / 6, 1 / 6])


@pytest.mark.parametrize(
    "override, message",
    [
        ("mixture.loss_proportional.temperature=0", "mixture.loss_proportional.temperature=0.0 must be > 0"),
        ("mixture.loss_proportional.temprature=2", r"unknown key\(s\) mixture.loss_proportional.temprature"),
    ],
)
def test_bad_options_name_the_key(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        check_config(small_config(tmp_path, "mixture.strategy=loss_proportional", override))


def test_a_whole_run_trains_with_it(tmp_path):
    records = run_local_training(small_config(tmp_path, "mixture.strategy=loss_proportional"))
    losses = np.asarray(records["evaluations"][0]["val_loss"])
    np.testing.assert_allclose(records["rounds"][0]["weights"], losses / losses.sum())
    assert [sum(record["achieved_counts"]) for record in records["rounds"]] == [32, 32, 32]
