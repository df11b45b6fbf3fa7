"""Aioli's online re-estimation of the skills interaction matrix (Chen et al. 2024, arXiv 2411.05735), pure numpy.

Role in the flow: mixture (`AioliMixture`, strategy "aioli") -> **aioli**. Aioli does not learn the graph
once before training: every update round starts with short LearnParams probes (each trains, for
real, on a smoothed one-hot mixture of one skill), measures how every skill's validation loss moved,
and solves for the interaction matrix A_t; the rest of the round trains on
p proportional to exp(eta * sum over evaluation skills of A_t[:, skill]), with A_t smoothed by an EMA.
Reference: `HazyResearch/aioli`, `trainer/aioli_trainer.py::learn_params_subroutine` and
`aioli_normalize_A`; re-implemented here from the paper and that code's rules, not copied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def smoothed_one_hot(num_skills: int, skill: int, one_hot_factor: float) -> np.ndarray:
    """A probe mixture: `one_hot_factor` on one skill, the rest shared equally by the others."""
    if num_skills == 1:
        return np.ones(1)
    weights = np.full(num_skills, (1.0 - one_hot_factor) / (num_skills - 1))
    weights[skill] = one_hot_factor
    return weights


def interaction_matrix(
    loss_before: Any, losses_after_probes: Sequence[Any], probe_skills: Sequence[int], one_hot_factor: float
) -> np.ndarray:
    """LearnParams: the k x k interaction matrix (rows = evaluation skills, columns = training skills).

    Probe p trains on `smoothed_one_hot(k, probe_skills[p])` and ends with `losses_after_probes[p]`;
    its loss drop since the previous probe is added to column `probe_skills[p]` of the observed matrix,
    averaged over sweeps. Smoothed probes mix the skills, so each row is unmixed by solving W a = row
    with W[m] the m-th probe mixture.
    """
    previous = np.asarray(loss_before, dtype=np.float64)
    num_skills = previous.size
    observed, counts = np.zeros((num_skills, num_skills)), np.zeros(num_skills)
    for skill, after in zip(probe_skills, losses_after_probes, strict=True):
        after = np.asarray(after, dtype=np.float64)
        observed[:, skill] += previous - after
        counts[skill] += 1
        previous = after
    if np.any(counts == 0):
        raise ValueError(f"every skill needs at least one probe, got probes {list(probe_skills)}")
    observed /= counts[np.newaxis, :]
    if one_hot_factor == 1.0:
        return observed
    mixtures = np.stack([smoothed_one_hot(num_skills, skill, one_hot_factor) for skill in range(num_skills)])
    return np.stack([np.linalg.solve(mixtures, row) for row in observed])


def normalize_interactions(matrix: Any) -> np.ndarray:
    """Aioli's `aioli_normalize_A`: shift by the smallest entry when it is negative, then divide by the sum."""
    array = np.array(matrix, dtype=np.float64)
    if array.min() < 0:
        array -= array.min()
    total = array.sum()
    return array / total if total > 0 else np.full_like(array, 1.0 / array.size)
