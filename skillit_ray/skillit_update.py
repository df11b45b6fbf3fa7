"""The Skill-it update rule, pure numpy: skills-graph checks, the paper's binary preprocessing, the weights.

Role in the flow: mixture (strategies) and graph diagnostics (simulated first rounds) -> **skillit_update**.

Legend (paper symbols): k training skills (rows of the skills graph A), m evaluation skills (columns),
eta the mirror-descent step size, w the window (evaluations aggregated per update), L the
per-evaluation-skill validation loss vector. Following the official code (`trainer/mw_trainer.py`):
    p_{t+1} proportional to prior * exp(eta * A @ reduce(last w evaluations of L))
with reduce = sum (pre-training, out-of-domain) or mean (fine-tuning), not recursive in p, A not
thresholded; with no evaluation yet the initial mixture prior * exp(eta * A @ 1_m). Log-sum-exp
keeps large eta * A @ L from overflowing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from skillit_ray.quotas import _as_weights

# ----------------------------------------------------------------------------- validation helpers


def _as_graph(graph: Any, num_train_skills: int | None = None, num_eval_skills: int | None = None) -> np.ndarray:
    array = np.asarray(graph, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(
            f"skills graph must be a k x m matrix (rows = training skills, columns = evaluation skills), "
            f"got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(f"skills graph entry [{bad[0]}, {bad[1]}] is {array[tuple(bad)]}; every entry must be finite")
    if num_train_skills is not None and array.shape[0] != num_train_skills:
        raise ValueError(
            f"skills graph has {array.shape[0]} rows but there are {num_train_skills} training skills; "
            "give one row per training skill, in the same order"
        )
    if num_eval_skills is not None and array.shape[1] != num_eval_skills:
        raise ValueError(
            f"skills graph has {array.shape[1]} columns but there are {num_eval_skills} evaluation skills; "
            "give one column per evaluation skill, in the same order"
        )
    return array


# ----------------------------------------------------------------------------- the Skill-it update


def paper_binary_graph(graph: Any) -> np.ndarray:
    """The official code's preprocessing of a binary synthetic graph: off-diagonal 1 -> 0.5.

    `mw_trainer.py` replaces every off-diagonal entry exactly equal to 1 by 0.5, so the LEGO graph
    has diagonal 1 and edges 0.5. Real-valued graphs (NI) pass through unchanged. We never apply this
    silently: configs ask for it with `mixture.graph_preprocessing: paper_binary`.
    """
    array = _as_graph(graph).copy()
    rows, columns = np.indices(array.shape)
    array[(rows != columns) & (array == 1.0)] = 0.5
    return array


def skillit_weights(
    graph: Any,
    loss_history: Sequence[Sequence[float]],
    eta: float,
    window: int,
    reduce: str = "sum",
    prior: Any = None,
) -> np.ndarray:
    """Skill-it mixture weights from the skills graph and the recent validation losses.

    Args:
        graph: k x m skills graph A (rows = training skills, columns = evaluation skills).
        loss_history: per-evaluation loss vectors, oldest first, each of length m.
        eta: step size, > 0.
        window: how many of the most recent evaluations enter the update, >= 1.
        reduce: "sum" (pre-training, out-of-domain) or "mean" (fine-tuning) over the window.
        prior: positive length-k prior (official `weights_init`); None means ones.

    Returns:
        Length-k weights summing to 1, proportional to prior * exp(eta * A @ aggregated_losses).
        With an empty history, aggregated_losses = ones(m): the initial mixture.
    """
    matrix = _as_graph(graph)
    num_train_skills, num_eval_skills = matrix.shape
    if not (np.isfinite(eta) and eta > 0):
        raise ValueError(f"eta={eta} must be a finite number > 0")
    if int(window) != window or window < 1:
        raise ValueError(f"window={window} must be an integer >= 1 (number of evaluations)")
    if reduce not in ("sum", "mean"):
        raise ValueError(f"reduce={reduce!r} must be 'sum' or 'mean'")
    prior_array = (
        np.ones(num_train_skills)
        if prior is None
        else _as_weights(prior, "prior", length=num_train_skills, allow_zero=False)
    )
    if len(loss_history) == 0:
        aggregated = np.ones(num_eval_skills)
    else:
        recent = np.asarray(list(loss_history)[-int(window) :], dtype=np.float64)
        if recent.ndim != 2 or recent.shape[1] != num_eval_skills:
            raise ValueError(
                f"each loss vector must have {num_eval_skills} entries (one per evaluation skill), "
                f"got shape {recent.shape}"
            )
        if not np.all(np.isfinite(recent)):
            raise ValueError(f"validation losses must be finite, got {recent.tolist()}; check the evaluation")
        aggregated = recent.sum(axis=0) if reduce == "sum" else recent.mean(axis=0)
    logits = np.log(prior_array) + eta * (matrix @ aggregated)
    logits -= logits.max()  # log-sum-exp shift: exp never overflows
    weights = np.exp(logits)
    return weights / weights.sum()
