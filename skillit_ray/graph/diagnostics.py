"""Whether a skills graph can help: density and the degenerate-graph warning (pure numpy).

Role in the flow: graph algorithms -> **diagnostics** -> graph.json / the driver's log. The official
README warns that Skill-it gives no gain over stratified or random sampling with a nearly empty or
nearly complete graph; `degenerate_graph_warning` says so, and what to change, before a user
spends a training run on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

NEARLY_EMPTY_DENSITY = 0.10
"""Below this fraction of positive off-diagonal entries the graph is nearly empty (A close to I)."""
NEARLY_COMPLETE_DENSITY = 0.90
"""Above this fraction the graph is nearly complete (Skill-it is close to stratified sampling)."""


def same_skill_mask(train_skills: Sequence[str] | None, eval_skills: Sequence[str] | None, shape: tuple) -> np.ndarray:
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
    off_diagonal = ~same_skill_mask(train_skills, eval_skills, array.shape)
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
