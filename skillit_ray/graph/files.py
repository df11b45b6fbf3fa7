"""The skills graph on storage: graph.json (A and how it was measured) and graph.npy, written and read.

Role in the flow: graph algorithms (tune/graph_runs.py writes) -> **files** -> mixture (the registry
reads the run's graph) and the driver (warnings from its recorded losses). Local paths and s3:// / gs://
URIs alike (`data/storage.py`). A graph read back is checked against the run's skill names, in order,
and its shape, with errors that name the file.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from skillit_ray.data.storage import RunStorage, read_file
from skillit_ray.graph.algorithms import check_skills
from skillit_ray.graph.diagnostics import degenerate_graph_warning, graph_density

GRAPH_JSON_FILE = "graph.json"
GRAPH_NPY_FILE = "graph.npy"
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


def _finite_or_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


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
    rows = check_skills(train_skills, "train_skills")
    columns = check_skills(eval_skills, "eval_skills")
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
    rows = check_skills(train_skills, "train_skills")
    columns = check_skills(eval_skills, "eval_skills")
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
