"""The paper's three settings: which skills are evaluated, which graph columns count, what stratified means.

Role in the flow: config -> **settings** -> mixture (graph columns, stratified proportions); the
evaluation skills of each setting are resolved with the skills (`data/sources/registry.py`). Pure numpy, no Ray.

    pretraining    evaluation skills = training skills; A is k x k
    finetuning     evaluation skills = the target skills (a subset of training skills); A is k x targets
    out_of_domain  evaluation skills disjoint from training skills; A is k x m
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _finite_graph(graph: Any) -> np.ndarray:
    array = np.asarray(graph, dtype=np.float64)
    if array.ndim != 2 or not np.all(np.isfinite(array)):
        raise ValueError(f"skills graph must be a finite k x m matrix, got shape {array.shape}")
    return array


def full_graph_columns(graph: np.ndarray, train_skills: list[str], target_skills: list[str]) -> np.ndarray:
    """Fine-tuning with a square k x k graph: keep only the target columns (official `graph[:, targets]`)."""
    indices = [train_skills.index(name) for name in target_skills]
    return np.asarray(graph)[:, indices]


def prerequisite_skills(graph: Any) -> np.ndarray:
    """Boolean mask of training skills with an edge into some evaluation skill (A_ij > 0 for some j)."""
    return np.any(_finite_graph(graph) > 0, axis=1)


def stratified_proportions(setting: str, graph: Any | None, num_train_skills: int) -> np.ndarray:
    """Skill-stratified sampling: uniform over all skills (pre-training), else over prerequisites.

    In fine-tuning and out-of-domain the paper drops training skills with no edge into the
    evaluation skills and samples uniformly over the rest.
    """
    if setting == "pretraining" or graph is None:
        return np.full(num_train_skills, 1.0 / num_train_skills)
    mask = prerequisite_skills(graph)
    if not mask.any():
        raise ValueError("the skills graph has no positive entry; stratified sampling has no skill to sample")
    return mask / mask.sum()
