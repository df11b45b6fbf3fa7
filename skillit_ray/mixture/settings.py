"""The paper's three settings: which skills are evaluated, which graph columns count, what stratified means.

Role in the flow: config -> **settings** -> data (evaluation skills) and mixture (graph columns,
stratified proportions). Pure numpy, no Ray.

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


def resolve_eval_skills(
    setting: str, train_skills: list[str], eval_skills: list[str], target_skills: list[str]
) -> list[str]:
    """Evaluation skills (graph columns) for a setting.

    pretraining: the training skills. finetuning: the target skills (a subset of training skills).
    out_of_domain: the given evaluation skills, disjoint from the training skills.
    """
    if setting == "pretraining":
        if eval_skills and eval_skills != train_skills:
            raise ValueError(
                f"pretraining evaluates the training skills {train_skills}; data.eval_skills={eval_skills} "
                "differs: leave it empty or use mixture.setting=out_of_domain"
            )
        return list(train_skills)
    if setting == "finetuning":
        targets = target_skills or eval_skills
        unknown = [name for name in targets if name not in train_skills]
        if unknown:
            raise ValueError(
                f"fine-tuning target skill(s) {unknown} are not training skills {train_skills}; "
                "a target must be one of the training skills"
            )
        return list(targets)
    if setting == "out_of_domain":
        overlap = [name for name in eval_skills if name in train_skills]
        if overlap:
            raise ValueError(f"out_of_domain evaluation skills {overlap} are also training skills; keep them disjoint")
        return list(eval_skills)
    raise ValueError(f"setting={setting!r} must be pretraining, finetuning or out_of_domain")


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
