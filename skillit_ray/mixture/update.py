"""The Skill-it update rule, pure numpy: skills-graph checks, the paper's binary preprocessing, the weights.

Role in the flow: strategies (`strategies/skillit.py`) and the first-rounds warning (`first_rounds.py`) -> **update**.

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

from skillit_ray.mixture.quotas import as_weights

# ----------------------------------------------------------------------------- validation helpers


def as_graph(graph: Any, num_train_skills: int | None = None, num_eval_skills: int | None = None) -> np.ndarray:
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
    array = as_graph(graph).copy()
    rows, columns = np.indices(array.shape)
    array[(rows != columns) & (array == 1.0)] = 0.5
    return array


FLOAT32_FROM_ENTRIES = 1_000_000
"""Graphs with at least this many entries (k x m) multiply in float32: at k = m = 10,000 the float64
matrix-vector product reads 800 MB per update, float32 half that (`python -m skillit_ray.benchmark
sampler`). Smaller graphs stay float64, so every trajectory measured so far is unchanged."""


class SkillitUpdate:
    """The Skill-it update for one graph, eta, window, reduce and prior, checked once.

    `weights(loss_history)` is the rule below; the strategy calls it once a round, so the k x m graph
    is validated (and, when large, converted to float32) here rather than on every update.
    """

    def __init__(self, graph: Any, eta: float, window: int, reduce: str = "sum", prior: Any = None) -> None:
        matrix = as_graph(graph)
        num_train_skills, self.num_eval_skills = matrix.shape
        if not (np.isfinite(eta) and eta > 0):
            raise ValueError(f"eta={eta} must be a finite number > 0")
        if int(window) != window or window < 1:
            raise ValueError(f"window={window} must be an integer >= 1 (number of evaluations)")
        if reduce not in ("sum", "mean"):
            raise ValueError(f"reduce={reduce!r} must be 'sum' or 'mean'")
        prior_array = (
            np.ones(num_train_skills)
            if prior is None
            else as_weights(prior, "prior", length=num_train_skills, allow_zero=False)
        )
        self.log_prior = np.log(prior_array)
        self.eta, self.window, self.reduce = float(eta), int(window), reduce
        self.matrix, self.row_sums = matrix, None
        if matrix.size >= FLOAT32_FROM_ENTRIES:
            # A @ x = sum_j mu_j x_j + (A - mu) @ (x - x_mean) + x_mean * row sums of (A - mu), with mu the
            # column means. The first term is the same for every row, so softmax drops it; the float32
            # product then sees only the centred parts (~sqrt(m) smaller than A @ x), and the weights stay
            # within ~1e-7 of the float64 rule (tested within 1e-6) instead of ~1e-4 for a plain float32 A @ x.
            centred = matrix - matrix.mean(axis=0)
            self.row_sums = centred.sum(axis=1)
            self.matrix = centred.astype(np.float32)

    def weights(self, loss_history: Sequence[Sequence[float]]) -> np.ndarray:
        """Length-k weights summing to 1, proportional to prior * exp(eta * A @ aggregated_losses)."""
        if len(loss_history) == 0:
            aggregated = np.ones(self.num_eval_skills)
        else:
            recent = np.asarray(list(loss_history)[-self.window :], dtype=np.float64)
            if recent.ndim != 2 or recent.shape[1] != self.num_eval_skills:
                raise ValueError(
                    f"each loss vector must have {self.num_eval_skills} entries (one per evaluation skill), "
                    f"got shape {recent.shape}"
                )
            if not np.all(np.isfinite(recent)):
                raise ValueError(f"validation losses must be finite, got {recent.tolist()}; check the evaluation")
            aggregated = recent.sum(axis=0) if self.reduce == "sum" else recent.mean(axis=0)
        if self.row_sums is None:
            product = self.matrix @ aggregated
        else:  # A @ x up to a constant shared by every row (see __init__)
            mean = aggregated.mean()
            product = (self.matrix @ (aggregated - mean).astype(np.float32)).astype(np.float64) + mean * self.row_sums
        logits = self.log_prior + self.eta * product
        logits -= logits.max()  # log-sum-exp shift: exp never overflows
        weights = np.exp(logits)
        return weights / weights.sum()


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
    return SkillitUpdate(graph, eta, window, reduce, prior).weights(loss_history)
