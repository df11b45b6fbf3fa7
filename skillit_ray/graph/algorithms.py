"""Pure skills-graph learning: per-run loss measurements from short runs -> the skills graph A.

Role in the flow: train -> **graph**/tune. The Ray Tune driver (`tune.py`) asks this module which
short runs to launch (`linear_run_specs`, `brute_force_run_specs`), runs each one for `graph.steps`
steps, measures every evaluation skill's validation loss before training and at
`graph.measure_at_step`, and hands the measurements back here. We turn them into A
(`linear_graph`, `brute_force_graph`), apply the configured normalization, threshold and diagonal
rule (`normalize_graph`), and save or load the result (`write_graph`, `load_graph`); the training
job reads A back with `load_graph`. `graph_diagnostics.py` says whether a graph can help (density,
degenerate-graph warning). No Ray, no torch: everything here is tested with toy arrays.

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

import io
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skillit_ray.data.storage import RunStorage, read_file
from skillit_ray.graph.diagnostics import _same_skill_mask, degenerate_graph_warning, graph_density

GRAPH_JSON_FILE = "graph.json"
GRAPH_NPY_FILE = "graph.npy"
NORMALIZATIONS = ("raw", "relative")
COMMON_DROP_RULES = ("keep", "row_min", "column_mean")
DIAGONAL_RULES = ("keep", "one", "zero")
GRAPH_JSON_KEYS = (
    "train_skills",
    "eval_skills",
    "method",
    "steps",
    "measure_at_step",
    "initial_losses",
    "raw_deltas",
    "raw_graph",
    "graph",
    "normalization",
    "common_drop",
    "threshold",
    "diagonal",
    "density",
    "warning",
)
"""Keys of graph.json, in the order they are written (plus any `extra` keys after them)."""

# ----------------------------------------------------------------------------- helpers


def _check_skills(skills: Sequence[str], role: str) -> list[str]:
    names = list(skills)
    if len(names) < 1:
        raise ValueError(f"{role} is empty; give at least one skill name")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{role} repeats {duplicates}; every skill name must appear once")
    return names


def _as_loss_vector(values: Any, num_eval_skills: int, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (num_eval_skills,):
        raise ValueError(
            f"{what} has shape {array.shape}, expected ({num_eval_skills},): one loss per evaluation skill, in order"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what}={array.tolist()} has non-finite losses; the short run diverged or was not measured")
    return array


def _finite_or_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


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
    names = _check_skills(train_skills, "train_skills")
    specs = []
    for index, skill in enumerate(names):
        proportions = [0.0] * len(names)
        proportions[index] = 1.0
        specs.append({"run_id": only_run_id(skill), "proportions": proportions})
    return specs


def brute_force_run_specs(train_skills: list[str]) -> list[dict[str, Any]]:
    """Short runs of Algorithm 2: the k runs of `linear_run_specs`, then k (k - 1) / 2 runs
    `{"run_id": "pair_<a>__<b>", "proportions": 0.5 on a and b}` (a before b in training order)."""
    names = _check_skills(train_skills, "train_skills")
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
    before = _as_loss_vector(before, before.size, "initial_losses")
    return {
        run_id: before - _as_loss_vector(after, before.size, f"losses after run {run_id!r}")
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
    _as_loss_vector(initial_losses, m, "initial_losses")
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
    rows = _check_skills(train_skills, "train_skills")
    columns = _check_skills(eval_skills, "eval_skills")
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
    rows = _check_skills(train_skills, "train_skills")
    columns = _check_skills(eval_skills, "eval_skills")
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
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"graph.normalization={normalization!r} is not one of {list(NORMALIZATIONS)}")
    if diagonal not in DIAGONAL_RULES:
        raise ValueError(f"graph.diagonal={diagonal!r} is not one of {list(DIAGONAL_RULES)}")
    rows = _check_skills(train_skills, "train_skills")
    columns = _check_skills(eval_skills, "eval_skills")
    graph = np.array(raw, dtype=np.float64)
    if graph.shape != (len(rows), len(columns)):
        raise ValueError(
            f"raw graph has shape {graph.shape}, expected ({len(rows)}, {len(columns)}) = (training, evaluation skills)"
        )
    before = _as_loss_vector(initial_losses, len(columns), "initial_losses")
    # 1. normalization
    if normalization == "relative":
        if np.any(before <= 0):
            raise ValueError(
                f"graph.normalization=relative divides by the initial losses {before.tolist()}, which must be positive"
            )
        graph = graph / before[np.newaxis, :]
    if common_drop not in COMMON_DROP_RULES:
        raise ValueError(f"graph.common_drop={common_drop!r} is not one of {list(COMMON_DROP_RULES)}")
    if common_drop == "row_min":
        graph = graph - graph.min(axis=1, keepdims=True)
    elif common_drop == "column_mean":
        graph = graph - graph.mean(axis=0, keepdims=True)
    # 2. threshold
    if threshold is not None:
        graph[graph <= threshold] = 0.0
    # 3. diagonal rule, by name
    same_skill = _same_skill_mask(rows, columns, graph.shape)
    if diagonal == "one":
        graph[same_skill] = 1.0
    elif diagonal == "zero":
        graph[same_skill] = 0.0
    return graph


# ----------------------------------------------------------------------------- save and load


def write_graph(
    directory: str | Path,
    *,
    train_skills: list[str],
    eval_skills: list[str],
    method: str,
    steps: int,
    measure_at_step: int,
    initial_losses: np.ndarray,
    raw_deltas: Mapping[str, np.ndarray],
    graph: np.ndarray,
    raw_graph: np.ndarray,
    normalization: str,
    threshold: float | None,
    diagonal: str,
    extra: dict[str, Any] | None = None,
    common_drop: str = "keep",
) -> Path | str:
    """Write `graph.npy` (the normalized A) and `graph.json` (A plus how it was measured) through storage.

    The keyword arguments are the `GRAPH_JSON_KEYS` of graph.json (graph = normalized k x m A,
    raw_graph = A before `normalize_graph`, raw_deltas = run id -> loss drop from `loss_drops`);
    `extra` adds more JSON-serializable keys (e.g. trial ids) and must not reuse a fixed one.
    `directory` is a local directory (created if missing) or an s3:// / gs:// URI.

    Returns:
        Path of graph.json (a URI string for cloud storage).

    Raises:
        ValueError: If a graph has the wrong shape or an `extra` key collides with a fixed key.
    """
    rows = _check_skills(train_skills, "train_skills")
    columns = _check_skills(eval_skills, "eval_skills")
    expected_shape = (len(rows), len(columns))
    normalized = np.asarray(graph, dtype=np.float64)
    raw = np.asarray(raw_graph, dtype=np.float64)
    for name, array in (("graph", normalized), ("raw_graph", raw)):
        if array.shape != expected_shape:
            raise ValueError(
                f"{name} has shape {array.shape}, expected {expected_shape} = (training, evaluation skills)"
            )
    extra = dict(extra or {})
    collisions = sorted(set(extra) & set(GRAPH_JSON_KEYS))
    if collisions:
        raise ValueError(f"extra keys {collisions} would overwrite fixed graph.json keys; rename them")
    document: dict[str, Any] = {
        "train_skills": rows,
        "eval_skills": columns,
        "method": method,
        "steps": int(steps),
        "measure_at_step": int(measure_at_step),
        "initial_losses": np.asarray(initial_losses, dtype=np.float64).tolist(),
        "raw_deltas": {run_id: np.asarray(delta, dtype=np.float64).tolist() for run_id, delta in raw_deltas.items()},
        "raw_graph": raw.tolist(),
        "graph": normalized.tolist(),
        "normalization": normalization,
        "common_drop": common_drop,
        "threshold": threshold,
        "diagonal": diagonal,
        "density": _finite_or_none(graph_density(normalized, rows, columns)),
        "warning": degenerate_graph_warning(normalized, rows, columns),
        **extra,
    }
    storage = RunStorage.at(directory)
    buffer = io.BytesIO()
    np.save(buffer, normalized)
    storage.write_bytes(GRAPH_NPY_FILE, buffer.getvalue())
    json_path = storage.write_text(GRAPH_JSON_FILE, json.dumps(document, indent=2) + "\n")
    return Path(json_path) if storage.is_local else json_path


def load_graph(path: str, train_skills: list[str], eval_skills: list[str]) -> np.ndarray:
    """Read a skills graph from graph.json (names checked) or a .npy file (shape checked).

    Args:
        path: A graph.json written by `write_graph`, or a .npy k x m array (for example the official repo's).
        train_skills: The run's k training skill names, in row order.
        eval_skills: The run's m evaluation skill names, in column order.

    Returns:
        The k x m float64 graph.

    Raises:
        ValueError: If the file is missing or not .json/.npy, its skill names differ from the run's (in
            order), or the graph has the wrong shape or a non-finite entry.
    """
    file_path = str(path)
    rows = _check_skills(train_skills, "train_skills")
    columns = _check_skills(eval_skills, "eval_skills")
    document = _read_graph_document(file_path)
    if document is not None:
        for key, expected in (("train_skills", rows), ("eval_skills", columns)):
            found = document.get(key)
            if found != expected:
                only_file = [name for name in (found or []) if name not in expected]
                only_run = [name for name in expected if name not in (found or [])]
                raise ValueError(
                    f"{key} in {file_path!r} are {found} but this run has {expected} "
                    f"(only in the file: {only_file}; only in the run: {only_run}; same names in another order "
                    "if both are empty): relearn the graph for these skills or fix the skill lists"
                )
    graph = load_graph_array(file_path)
    expected_shape = (len(rows), len(columns))
    if graph.shape != expected_shape:
        raise ValueError(
            f"skills graph in {file_path!r} has shape {graph.shape}, expected {expected_shape} "
            "(one row per training skill, one column per evaluation skill)"
        )
    if not np.all(np.isfinite(graph)):
        row, column = np.argwhere(~np.isfinite(graph))[0]
        raise ValueError(
            f"skills graph in {file_path!r} has non-finite entry [{row}, {column}] = {graph[row, column]}; "
            "every entry must be finite"
        )
    return graph


def _read_graph_document(path: str) -> dict[str, Any] | None:
    """graph.json as a dict, None for a .npy file; errors name the file."""
    if not (path.endswith(".json") or path.endswith(".npy")):
        raise ValueError(f"skills graph file {path!r} must end in .json or .npy")
    try:
        payload = read_file(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ValueError(
            f"skills graph file {path!r} does not exist; run the graph stage first or fix the path"
        ) from None
    if path.endswith(".npy"):
        return None
    try:
        document = json.loads(payload)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"skills graph file {path!r} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
            "rewrite it with `skillit-ray graph`"
        ) from None
    if not isinstance(document, dict) or "graph" not in document:
        raise ValueError(
            f"skills graph file {path!r} must be a JSON object with a 'graph' key, as `skillit-ray graph` writes"
        )
    return document


def load_graph_array(path: str) -> np.ndarray:
    """The graph matrix of a graph.json or .npy file, unchecked against skill names (float64)."""
    document = _read_graph_document(path)
    if document is not None:
        return np.asarray(document["graph"], dtype=np.float64)
    try:
        return np.asarray(np.load(io.BytesIO(read_file(path)), allow_pickle=False), dtype=np.float64)
    except ValueError as error:
        raise ValueError(
            f"skills graph file {path!r} is not a numeric .npy array ({error}); write it with numpy.save(float array)"
        ) from None


def load_initial_losses(path: str) -> np.ndarray | None:
    """The starting model's per-evaluation-skill losses recorded in a graph.json (None for a .npy file)."""
    document = _read_graph_document(path)
    if document is None or not document.get("initial_losses"):
        return None
    return np.asarray(document["initial_losses"], dtype=np.float64)
