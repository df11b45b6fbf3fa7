"""Pure skills-graph learning: per-run loss measurements from short runs -> the skills graph A.

Role in the flow: **graph algorithms** -> graph files -> mixture. The Ray Tune driver
(`tune/graph_runs.py`) asks this module which short runs to launch (`linear_run_specs`,
`brute_force_run_specs`), runs each one for `graph.steps` steps, measures every evaluation skill's
validation loss before training and at `graph.measure_at_step`, and hands the measurements back here.
We turn them into A (`linear_graph`, `brute_force_graph`) and apply the configured normalization,
threshold and diagonal rule (`normalize_graph`); `files.py` saves and loads the result and
`diagnostics.py` says whether a graph can help. No Ray, no torch: everything here is tested with toy arrays.

Legend (paper symbols, section 3 of the reference):
    k                number of training skills (rows of A)
    m                number of evaluation skills (columns of A)
    A                skills graph, k x m; A[i, j] > 0 means training on skill i helps evaluation skill j
    L_j(before)      validation loss of evaluation skill j of the starting model (`initial_losses[j]`)
    L_j(after, run)  validation loss of evaluation skill j after the short run `run`
    delta_j^run      L_j(before) - L_j(after, run); positive means the loss went down
    delta_j^i        delta of the run trained only on skill i (run id `only_<skill i>`)
    delta_j^{i,j}    delta of the run trained on a uniform mix of skills i and j (run id `pair_<a>__<b>`)
    h, H             steps of each short run (Alg. 3, Alg. 2), `GraphConfig.steps`

Algorithm 3 (linear, O(h k) runs, works out-of-domain): A[i, j] = delta_j^i.
Algorithm 2 (brute force, O(H k^2) runs, needs S_eval subset of S_train): the paper draws the edge
i -> j when delta_j^{i,j} > delta_j^j and says the magnitude is "typically proportional to"
delta_j^{i,j} - delta_j^j. We use exactly that difference off the diagonal and delta_j^j on it, so
a positive entry is an edge and the diagonal still records how much a skill teaches itself.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from skillit_ray.config.graph import GRAPH_COMMON_DROP_RULES, GRAPH_DIAGONAL_RULES, GRAPH_NORMALIZATIONS
from skillit_ray.graph.diagnostics import same_skill_mask

# ----------------------------------------------------------------------------- helpers


def check_skills(skills: Sequence[str], role: str) -> list[str]:
    names = list(skills)
    if len(names) < 1:
        raise ValueError(f"{role} is empty; give at least one skill name")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{role} repeats {duplicates}; every skill name must appear once")
    return names


def as_loss_vector(values: Any, num_eval_skills: int, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (num_eval_skills,):
        raise ValueError(
            f"{what} has shape {array.shape}, expected ({num_eval_skills},): one loss per evaluation skill, in order"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what}={array.tolist()} has non-finite losses; the short run diverged or was not measured")
    return array


# ----------------------------------------------------------------------------- which short runs to launch


def only_run_id(skill: str) -> str:
    """Run id of the short run trained only on `skill`."""
    return f"only_{skill}"


def pair_run_id(first_skill: str, second_skill: str) -> str:
    """Run id of the short run on a uniform mix of two skills (given in training-skill order)."""
    return f"pair_{first_skill}__{second_skill}"


def linear_run_specs(train_skills: list[str]) -> list[dict[str, Any]]:
    """Short runs of Algorithm 3: one `{"run_id": "only_<skill>", "proportions": one-hot}` per training
    skill (in graph row order), trained on that skill alone; a missing or repeated name is a ValueError."""
    names = check_skills(train_skills, "train_skills")
    specs = []
    for index, skill in enumerate(names):
        proportions = [0.0] * len(names)
        proportions[index] = 1.0
        specs.append({"run_id": only_run_id(skill), "proportions": proportions})
    return specs


def brute_force_run_specs(train_skills: list[str]) -> list[dict[str, Any]]:
    """Short runs of Algorithm 2: the k runs of `linear_run_specs`, then k (k - 1) / 2 runs
    `{"run_id": "pair_<a>__<b>", "proportions": 0.5 on a and b}` (a before b in training order)."""
    names = check_skills(train_skills, "train_skills")
    specs = linear_run_specs(names)
    for first, second in itertools.combinations(range(len(names)), 2):
        proportions = [0.0] * len(names)
        proportions[first] = proportions[second] = 0.5
        specs.append({"run_id": pair_run_id(names[first], names[second]), "proportions": proportions})
    return specs


# ----------------------------------------------------------------------------- measurements -> A


def loss_drops(initial_losses: np.ndarray, losses_after: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-run loss drop delta = L(before) - L(after); positive means the loss went down.

    Args:
        initial_losses: L_j(before), shape (m,).
        losses_after: Run id -> L_j(after, run), each shape (m,).

    Returns:
        Run id -> delta, shape (m,), in the order of `losses_after`.

    Raises:
        ValueError: If a vector has the wrong shape or a non-finite loss.
    """
    before = np.asarray(initial_losses, dtype=np.float64)
    if before.ndim != 1 or before.size < 1:
        raise ValueError(
            f"initial_losses must be a non-empty 1-D vector (one per evaluation skill), got {before.shape}"
        )
    before = as_loss_vector(before, before.size, "initial_losses")
    return {
        run_id: before - as_loss_vector(after, before.size, f"losses after run {run_id!r}")
        for run_id, after in losses_after.items()
    }


def _drops_for_runs(
    initial_losses: np.ndarray, losses_after_by_run: Mapping[str, np.ndarray], needed_run_ids: list[str], m: int
) -> dict[str, np.ndarray]:
    missing = [run_id for run_id in needed_run_ids if run_id not in losses_after_by_run]
    if missing:
        raise ValueError(
            f"no loss measurement for runs {missing}; every short run must finish before the graph is built "
            f"(got {sorted(losses_after_by_run)})"
        )
    as_loss_vector(initial_losses, m, "initial_losses")
    return loss_drops(initial_losses, {run_id: losses_after_by_run[run_id] for run_id in needed_run_ids})


def linear_graph(
    train_skills: list[str],
    eval_skills: list[str],
    initial_losses: np.ndarray,
    losses_after_by_run: Mapping[str, np.ndarray],
) -> np.ndarray:
    """Algorithm 3: row i of A is the loss drop of the run trained only on training skill i.

    Args:
        train_skills: k training skill names (rows).
        eval_skills: m evaluation skill names (columns); may be disjoint from `train_skills`.
        initial_losses: L_j(before), shape (m,).
        losses_after_by_run: Run id -> L_j(after), shape (m,); needs `only_<skill>` for every training skill.

    Returns:
        The raw k x m graph A[i, j] = delta_j^i.

    Raises:
        ValueError: On empty or repeated skills, a missing run, or a wrong-shaped or non-finite loss vector.
    """
    rows = check_skills(train_skills, "train_skills")
    columns = check_skills(eval_skills, "eval_skills")
    needed = [only_run_id(skill) for skill in rows]
    drops = _drops_for_runs(initial_losses, losses_after_by_run, needed, len(columns))
    return np.stack([drops[run_id] for run_id in needed])


def brute_force_graph(
    train_skills: list[str],
    eval_skills: list[str],
    initial_losses: np.ndarray,
    losses_after_by_run: Mapping[str, np.ndarray],
) -> np.ndarray:
    """Algorithm 2: does mixing training skill i into skill j help j more than j alone?

    For evaluation skill j (itself training skill t) and training skill i:
        A[i, j] = delta_j^{i,t} - delta_j^t   if i != t  (positive = edge i -> j)
        A[t, j] = delta_j^t                   (the skill's own loss drop)
    Both runs see the same number of steps H, so the pair run sees half as much skill-j data: a
    positive difference means skill i more than makes up for it.

    Args:
        train_skills: k training skill names (rows).
        eval_skills: m evaluation skill names (columns); each must be a training skill.
        initial_losses: L_j(before), shape (m,).
        losses_after_by_run: Run id -> L_j(after), shape (m,); needs the `only_` run of every evaluation
            skill and the `pair_` run of every (training skill, evaluation skill) pair.

    Returns:
        The raw k x m graph.

    Raises:
        ValueError: If an evaluation skill is not a training skill (use `linear_graph` out-of-domain),
            or on the errors of `linear_graph`.
    """
    rows = check_skills(train_skills, "train_skills")
    columns = check_skills(eval_skills, "eval_skills")
    missing = [skill for skill in columns if skill not in rows]
    if missing:
        raise ValueError(
            f"brute-force graph learning (paper Alg. 2) needs every evaluation skill among the training skills; "
            f"{missing} are not in train_skills={rows}: use graph.method=linear for out-of-domain graphs"
        )
    # (row, column) -> run id whose loss drop on that column enters A[row, column]
    run_for_cell: dict[tuple[int, int], str] = {}
    for column, column_skill in enumerate(columns):
        target = rows.index(column_skill)
        for row in range(len(rows)):
            first, second = sorted((row, target))
            run_for_cell[row, column] = (
                only_run_id(column_skill) if row == target else pair_run_id(rows[first], rows[second])
            )
    needed = list(dict.fromkeys(run_for_cell.values()))
    drops = _drops_for_runs(initial_losses, losses_after_by_run, needed, len(columns))
    graph = np.zeros((len(rows), len(columns)))
    for (row, column), run_id in run_for_cell.items():
        alone = drops[only_run_id(columns[column])][column]
        mixed = drops[run_id][column]
        graph[row, column] = alone if run_id == only_run_id(columns[column]) else mixed - alone
    return graph


# ----------------------------------------------------------------------------- normalization


def normalize_graph(
    raw: np.ndarray,
    initial_losses: np.ndarray,
    normalization: str,
    threshold: float | None,
    diagonal: str,
    *,
    train_skills: Sequence[str],
    eval_skills: Sequence[str],
    common_drop: str = "keep",
) -> np.ndarray:
    """Apply, in this order: normalization, common-drop removal, threshold, diagonal rule.

    1. normalization: "raw" keeps loss drops; "relative" divides column j by L_j(before), as Aioli does.
    1b. common_drop: "keep" (the paper); "row_min" subtracts from row i its smallest entry, the drop
       that training on skill i gives every evaluation skill alike (from scratch, every short run first
       learns what all skills share: the answer format, the token statistics), which otherwise makes
       the graph nearly complete and, at the paper's eta, collapses the mixture; "column_mean"
       subtracts from column j its mean over training skills (alone it shifts every logit equally, so
       it matters only with a threshold or a diagonal rule).
    2. threshold: entries <= threshold become 0 (None keeps every entry, negatives included, as the
       official code does).
    3. diagonal at positions where training skill i and evaluation skill j have the same name:
       "keep", "one" (the official static path) or "zero" (the paper's heatmaps). Out-of-domain graphs
       have no such position, so the rule changes nothing there.

    `raw` (k x m, from `linear_graph` or `brute_force_graph`) is not modified; `initial_losses` are the
    L_j(before); rows and columns are named by `train_skills` and `eval_skills`. Raises ValueError on an
    unknown option, mismatched shapes, or a non-positive initial loss with "relative".
    """
    if normalization not in GRAPH_NORMALIZATIONS:
        raise ValueError(f"graph.normalization={normalization!r} is not one of {list(GRAPH_NORMALIZATIONS)}")
    if diagonal not in GRAPH_DIAGONAL_RULES:
        raise ValueError(f"graph.diagonal={diagonal!r} is not one of {list(GRAPH_DIAGONAL_RULES)}")
    rows = check_skills(train_skills, "train_skills")
    columns = check_skills(eval_skills, "eval_skills")
    graph = np.array(raw, dtype=np.float64)
    if graph.shape != (len(rows), len(columns)):
        raise ValueError(
            f"raw graph has shape {graph.shape}, expected ({len(rows)}, {len(columns)}) = (training, evaluation skills)"
        )
    before = as_loss_vector(initial_losses, len(columns), "initial_losses")
    # 1. normalization
    if normalization == "relative":
        if np.any(before <= 0):
            raise ValueError(
                f"graph.normalization=relative divides by the initial losses {before.tolist()}, which must be positive"
            )
        graph = graph / before[np.newaxis, :]
    if common_drop not in GRAPH_COMMON_DROP_RULES:
        raise ValueError(f"graph.common_drop={common_drop!r} is not one of {list(GRAPH_COMMON_DROP_RULES)}")
    if common_drop == "row_min":
        graph = graph - graph.min(axis=1, keepdims=True)
    elif common_drop == "column_mean":
        graph = graph - graph.mean(axis=0, keepdims=True)
    # 2. threshold
    if threshold is not None:
        graph[graph <= threshold] = 0.0
    # 3. diagonal rule, by name
    same_skill = same_skill_mask(rows, columns, graph.shape)
    if diagonal == "one":
        graph[same_skill] = 1.0
    elif diagonal == "zero":
        graph[same_skill] = 0.0
    return graph
