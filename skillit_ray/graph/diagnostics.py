"""Whether a skills graph can help: density and the degenerate-graph warning (pure numpy).

Role in the flow: graph -> **graph diagnostics** -> graph.json / the driver's log. The official
README warns that Skill-it gives no gain over stratified or random sampling with a nearly empty or
nearly complete graph; `degenerate_graph_warning` says so, and what to change, before a user
spends a training run on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from skillit_ray.mixture.update import skillit_weights

NEARLY_EMPTY_DENSITY = 0.10
"""Below this fraction of positive off-diagonal entries the graph is nearly empty (A close to I)."""
NEARLY_COMPLETE_DENSITY = 0.90
"""Above this fraction the graph is nearly complete (Skill-it is close to stratified sampling)."""


def _same_skill_mask(train_skills: Sequence[str] | None, eval_skills: Sequence[str] | None, shape: tuple) -> np.ndarray:
    """True at (i, j) where training skill i is evaluation skill j.

    With names, matching is by name (out-of-domain graphs have no such position). Without names a
    square graph uses its positional diagonal and a non-square one has none.
    """
    if train_skills is not None and eval_skills is not None:
        return np.array([[train == evaluation for evaluation in eval_skills] for train in train_skills], dtype=bool)
    if shape[0] == shape[1]:
        return np.eye(shape[0], dtype=bool)
    return np.zeros(shape, dtype=bool)


def graph_density(
    graph: np.ndarray, train_skills: Sequence[str] | None = None, eval_skills: Sequence[str] | None = None
) -> float:
    """Fraction of positive off-diagonal entries (the paper's density: Alpaca 97.4%, Pile of Law 3.9%).

    Args:
        graph: k x m skills graph.
        train_skills: Row names; with `eval_skills`, the diagonal is matched by name.
        eval_skills: Column names. Without names, a square graph's positional diagonal is excluded and a
            non-square graph counts every entry.

    Returns:
        The density in [0, 1], or NaN when there is no off-diagonal entry (a single skill).
    """
    array = np.asarray(graph, dtype=np.float64)
    off_diagonal = ~_same_skill_mask(train_skills, eval_skills, array.shape)
    if not off_diagonal.any():
        return float("nan")
    return float(np.mean(array[off_diagonal] > 0))


def degenerate_graph_warning(
    graph: np.ndarray, train_skills: Sequence[str] | None = None, eval_skills: Sequence[str] | None = None
) -> str | None:
    """A warning when the graph is nearly empty or nearly complete, else None.

    The official repo's README says Skill-it will not help then: an empty graph reduces it to
    loss-proportional sampling ("No graph"), a complete one to stratified sampling.

    Args:
        graph: k x m skills graph.
        train_skills: Row names (see `graph_density`).
        eval_skills: Column names (see `graph_density`).

    Returns:
        The message, or None for an intermediate density or a graph with no off-diagonal entry.
    """
    density = graph_density(graph, train_skills, eval_skills)
    if math.isnan(density):
        return None
    if density < NEARLY_EMPTY_DENSITY:
        return (
            f"skills graph is nearly empty ({density:.1%} of off-diagonal entries positive, below "
            f"{NEARLY_EMPTY_DENSITY:.0%}): Skill-it reduces to loss-proportional sampling and will likely not help; "
            "try longer short runs (graph.steps) or a lower graph.threshold"
        )
    if density > NEARLY_COMPLETE_DENSITY:
        return (
            f"skills graph is nearly complete ({density:.1%} of off-diagonal entries positive, above "
            f"{NEARLY_COMPLETE_DENSITY:.0%}): Skill-it is close to stratified sampling and will likely not help; "
            "raise graph.threshold (with graph.normalization=relative it is a fraction of the initial loss)"
        )
    return None


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
