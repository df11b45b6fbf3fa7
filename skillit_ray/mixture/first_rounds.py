"""Skill-it's first rounds simulated before training: will they collapse onto one skill or stay stratified?

Role in the flow: graph (a learned graph and its measured step-0 losses) -> **first rounds** -> a warning
in the graph run's log and graph.json, and before a Skill-it run. From the graph, eta, window and the
loss scale the graph runs measured, the first two rounds' weights are computed with the real update
rule; a run whose rounds would put nearly everything on one skill, or stay within a small factor of
uniform, is warned, with the eta that spreads the first logits over ln 10 nats. Pure numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from skillit_ray.mixture.update import skillit_weights

COLLAPSE_WEIGHT = 0.9
"""A round that puts more than this share of samples on one skill has collapsed onto it."""
NEAR_STRATIFIED_RATIO = 1.25
"""Rounds whose largest weight is within this factor of their smallest are practically stratified."""
TARGET_LOGIT_SPREAD = math.log(10.0)
"""Suggested eta aims at this spread of eta * A @ window losses: the most favoured skill gets ~10x the least."""


def simulate_first_rounds(
    graph: np.ndarray, losses: np.ndarray, eta: float, window: int, reduce: str, prior=None
) -> list[np.ndarray]:
    """Skill-it's first two mixtures: round 0 (no loss yet) and a round after `window` evaluations that
    all measured `losses` (the loss scale the graph runs measured before training: the largest the
    update will see, since losses only fall)."""
    history = [np.asarray(losses, dtype=np.float64)] * int(window)
    return [
        skillit_weights(graph, [], eta, window, reduce, prior),
        skillit_weights(graph, history, eta, window, reduce, prior),
    ]


def mixture_warning(
    graph: np.ndarray, losses: np.ndarray, eta: float, window: int, reduce: str, train_skills: Sequence[str]
) -> str | None:
    """A warning, with the eta to use instead, when Skill-it's first rounds would collapse onto one skill
    or stay practically stratified at this graph, eta, window and loss scale; None when neither."""
    rounds = simulate_first_rounds(graph, losses, eta, window, reduce)
    aggregated = np.asarray(losses, dtype=np.float64) * (window if reduce == "sum" else 1)
    spread = float(np.ptp(eta * (np.asarray(graph) @ aggregated)))
    suggested = eta * TARGET_LOGIT_SPREAD / spread if spread > 0 else float("inf")
    described = ", ".join(
        f"round {index + 1}: " + _describe(weights, train_skills) for index, weights in enumerate(rounds)
    )
    if max(float(weights.max()) for weights in rounds) > COLLAPSE_WEIGHT:
        return (
            f"Skill-it would collapse onto one skill ({described}): eta * A @ losses spans {spread:.1f} nats at "
            f"mixture.eta={eta:g}, and the other skills get almost no data until that skill's loss falls. Intended "
            f"only if it is their prerequisite; otherwise set mixture.eta to about {suggested:.3g}, or let "
            f"`skillit-ray tune` choose it (tune.eta_grid)"
        )
    if all(float(weights.max() / max(weights.min(), 1e-12)) < NEAR_STRATIFIED_RATIO for weights in rounds):
        advice = f"set mixture.eta to about {suggested:.3g}" if np.isfinite(suggested) else "its rows are all equal"
        return (
            f"Skill-it would stay practically stratified ({described}: every weight within "
            f"{NEAR_STRATIFIED_RATIO:g}x of the others): {advice}, or expect stratified sampling's result"
        )
    return None


def _describe(weights: np.ndarray, train_skills: Sequence[str]) -> str:
    top = int(np.argmax(weights))
    return f"max {weights[top]:.2f} on {train_skills[top]}, min {weights.min():.2f}"
