"""Plots and tables from a finished run's files; no Ray, no torch.

Role in the flow: train and tune -> **report** -> the run directory and `skillit-ray compare`. After a run,
`outputs.py` calls `plot_mixture_weights` and `plot_validation_loss` on its directory (`mixture.jsonl`,
`metrics.jsonl`, `summary.json`); `tune/graph_runs.py` calls `plot_graph_heatmap` on a learned skills
graph; `comparison_table` and `plot_comparison` (`compare_runs`) put several runs (one per strategy) side
by side, like the paper's Table 5 and Figure 4.

Files read (one run directory):
    mixture.jsonl   one object per round: round, step, weights (training-skill order),
                    achieved_counts, val_loss (evaluation-skill order), accuracy (list or null)
    metrics.jsonl   one object per line; "kind": "eval" lines carry step, val_loss, accuracy;
                    "kind": "train" lines carry step, train_loss, learning_rate, tokens_per_s, tokens_seen
    summary.json    name, strategy, steps, skills (training), eval_skills, per_skill_val_loss,
                    per_skill_accuracy, mean_val_loss, mean_accuracy, tokens_per_s, wall_s

Figures are drawn on the Agg canvas directly (no pyplot global state, safe in worker threads) and
written through `storage` (atomic on local disk); run directories may be local paths or s3:// / gs://
URIs, read and written the same way.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from skillit_ray.data.storage import is_uri, read_file, write_file
from skillit_ray.train.lm_evaluation import evaluation_table

MIXTURE_WEIGHTS_FILE = "mixture_weights.png"
VALIDATION_LOSS_FILE = "val_loss.png"
MAX_ANNOTATED_CELLS = 144
"""Heatmaps up to 12 x 12 print each value in its cell; larger ones would be unreadable."""
DOTS_PER_INCH = 120

# ----------------------------------------------------------------------------- reading


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file (local path or s3:// / gs:// URI), skipping blank lines.

    Args:
        path: File with one JSON object per line.

    Returns:
        The objects, in file order.

    Raises:
        ValueError: If the file is missing or a line is not a JSON object.
    """
    records = []
    for line_number, line in enumerate(_read_run_file(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{str(path)!r} line {line_number} is not valid JSON: {error}") from error
        if not isinstance(record, dict):
            raise ValueError(f"{str(path)!r} line {line_number} is not a JSON object")
        records.append(record)
    return records


def _read_run_file(path: str | Path) -> str:
    try:
        return read_file(path).decode()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ValueError(f"{str(path)!r} does not exist; is this a finished run directory?") from None


def _join(run_dir: str | Path, name: str) -> str:
    return f"{str(run_dir).rstrip('/')}/{name}"


def _run_name(run_dir: str | Path) -> str:
    return str(run_dir).rstrip("/").rsplit("/", 1)[-1]


def _read_summary(run_dir: str | Path) -> dict[str, Any]:
    path = _join(run_dir, "summary.json")
    try:
        return json.loads(read_file(path))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ValueError(f"{path!r} does not exist; is {str(run_dir)!r} a finished run directory?") from None


def _skill_names(run_dir: str | Path, key: str, count: int) -> list[str]:
    """Skill names from summary.json when it is there (it is written first), else skill_0, skill_1, ..."""
    try:
        names = json.loads(read_file(_join(run_dir, "summary.json"))).get(key)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        names = None
    if names and len(names) == count:
        return list(names)
    return [f"skill_{index}" for index in range(count)]


def _evaluations(run_dir: str | Path) -> list[dict[str, Any]]:
    return [record for record in read_jsonl(_join(run_dir, "metrics.jsonl")) if record.get("kind") == "eval"]


# ----------------------------------------------------------------------------- writing


def new_figure(width_inches: float, height_inches: float) -> Figure:
    figure = Figure(figsize=(width_inches, height_inches), dpi=DOTS_PER_INCH, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: str | Path) -> Path | str:
    """Render to PNG and write it through storage (atomic locally); returns a Path when local."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    written = write_file(path, buffer.getvalue())
    return written if is_uri(written) else Path(written)


# ----------------------------------------------------------------------------- one run


def plot_mixture_weights(run_dir: str | Path) -> Path | str:
    """Stacked bars of the mixture weights per round, from mixture.jsonl.

    Args:
        run_dir: Run directory.

    Returns:
        Path of `<run_dir>/mixture_weights.png`.

    Raises:
        ValueError: If mixture.jsonl is missing or has no round.
    """
    rounds = read_jsonl(_join(run_dir, "mixture.jsonl"))
    if not rounds:
        raise ValueError(f"{_join(run_dir, 'mixture.jsonl')!r} has no rounds to plot")
    weights = np.array([record["weights"] for record in rounds], dtype=np.float64)
    weights = weights / weights.sum(axis=1, keepdims=True)
    names = _skill_names(run_dir, "skills", weights.shape[1])
    round_indices = np.array([record["round"] for record in rounds])
    figure = new_figure(max(6.0, 0.5 * len(rounds) + 3.0), 4.0)
    axes = figure.add_subplot()
    bottom = np.zeros(len(rounds))
    for skill_index, name in enumerate(names):
        axes.bar(round_indices, weights[:, skill_index], bottom=bottom, label=name, width=0.8)
        bottom += weights[:, skill_index]
    axes.set_xlabel("round")
    axes.set_ylabel("mixture weight (fraction of the round's samples)")
    axes.set_ylim(0.0, 1.0)
    axes.set_xticks(round_indices)
    axes.set_title(f"Mixture weights per round: {_run_name(run_dir)}")
    _skill_legend(axes, "training skill", len(names), "mixture.jsonl")
    return save_figure(figure, _join(run_dir, MIXTURE_WEIGHTS_FILE))


MAX_LEGEND_SKILLS = 24
"""Above this many skills a per-skill legend would squash the axes to nothing; the plot names the file instead."""


def _skill_legend(axes, title: str, num_skills: int, source_file: str) -> None:
    if num_skills <= MAX_LEGEND_SKILLS:
        axes.legend(title=title, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    else:
        axes.text(1.02, 0.5, f"{num_skills} skills:\nper-skill values\nin {source_file}", transform=axes.transAxes,
                  va="center", fontsize="small")  # fmt: skip


def plot_validation_loss(run_dir: str | Path) -> Path | str:
    """Per-evaluation-skill validation loss against step (log scale), from metrics.jsonl.

    Args:
        run_dir: Run directory.

    Returns:
        Path of `<run_dir>/val_loss.png`.

    Raises:
        ValueError: If metrics.jsonl is missing or has no evaluation line.
    """
    evaluations = _evaluations(run_dir)
    if not evaluations:
        raise ValueError(f"{_join(run_dir, 'metrics.jsonl')!r} has no evaluation lines to plot")
    steps = [record["step"] for record in evaluations]
    losses = np.array([record["val_loss"] for record in evaluations], dtype=np.float64)
    names = _skill_names(run_dir, "eval_skills", losses.shape[1])
    figure = new_figure(7.0, 4.0)
    axes = figure.add_subplot()
    for skill_index, name in enumerate(names):
        axes.plot(steps, losses[:, skill_index], marker="o", markersize=3, label=name)
    axes.set_yscale("log")
    axes.set_xlabel("training step")
    axes.set_ylabel("validation loss (log scale)")
    axes.set_title(f"Validation loss per evaluation skill: {_run_name(run_dir)}")
    axes.grid(True, which="both", alpha=0.3)
    _skill_legend(axes, "evaluation skill", len(names), "metrics.jsonl")
    return save_figure(figure, _join(run_dir, VALIDATION_LOSS_FILE))


def plot_graph_heatmap(
    graph: np.ndarray, train_skills: Sequence[str], eval_skills: Sequence[str], path: str | Path, title: str
) -> Path | str:
    """Heatmap of a k x m skills graph; a diverging color map centred on 0 so negative entries show.

    Args:
        graph: k x m skills graph.
        train_skills: Row names.
        eval_skills: Column names.
        path: Output PNG path.
        title: Figure title.

    Returns:
        `path` as a Path.

    Raises:
        ValueError: If the graph shape does not match the names.
    """
    array = np.asarray(graph, dtype=np.float64)
    if array.shape != (len(train_skills), len(eval_skills)):
        raise ValueError(
            f"graph has shape {array.shape} but there are {len(train_skills)} training and {len(eval_skills)} "
            "evaluation skill names"
        )
    largest = float(np.max(np.abs(array[np.isfinite(array)]), initial=0.0)) or 1.0
    figure = new_figure(max(4.0, 0.5 * len(eval_skills) + 3.0), max(3.5, 0.4 * len(train_skills) + 2.0))
    axes = figure.add_subplot()
    image = axes.imshow(array, cmap="RdBu_r", vmin=-largest, vmax=largest, aspect="auto")
    axes.set_xticks(range(len(eval_skills)), labels=list(eval_skills), rotation=45, ha="right")
    axes.set_yticks(range(len(train_skills)), labels=list(train_skills))
    axes.set_xlabel("evaluation skill j (column)")
    axes.set_ylabel("training skill i (row)")
    axes.set_title(title)
    if array.size <= MAX_ANNOTATED_CELLS:
        for (row, column), value in np.ndenumerate(array):
            color = "white" if abs(value) > 0.6 * largest else "black"
            axes.text(column, row, f"{value:.2g}", ha="center", va="center", fontsize="small", color=color)
    figure.colorbar(image, ax=axes, label="A[i, j] (positive: training on i helps j)")
    return save_figure(figure, path)


# ----------------------------------------------------------------------------- several runs


def _run_label(summary: dict[str, Any], labels_so_far: list[str]) -> str:
    label = str(summary.get("strategy") or summary.get("name"))
    return f"{label} ({summary.get('name')})" if label in labels_so_far else label


def comparison_table(run_dirs: Sequence[str | Path]) -> str:
    """Final per-skill results of several runs as a fixed-width text table, like the paper's Table 5.

    Accuracy in % when every run measured it, otherwise validation loss. One row per run, labelled
    by its strategy (and its run name when two runs share a strategy); one column per evaluation
    skill, then the mean over skills.

    Args:
        run_dirs: Run directories, each with summary.json; all must share the evaluation skills.

    Returns:
        The table, with a title line and a trailing newline.

    Raises:
        ValueError: If there is no run or the runs evaluate different skills.
    """
    if not run_dirs:
        raise ValueError("comparison_table needs at least one run directory")
    summaries = [_read_summary(directory) for directory in run_dirs]
    eval_skills = list(summaries[0]["eval_skills"])
    for directory, summary in zip(run_dirs, summaries):
        if list(summary["eval_skills"]) != eval_skills:
            raise ValueError(
                f"run {str(directory)!r} evaluates {summary['eval_skills']} but {str(run_dirs[0])!r} evaluates "
                f"{eval_skills}; compare runs on the same evaluation skills"
            )
    use_accuracy = all(summary.get("per_skill_accuracy") is not None for summary in summaries)
    labels: list[str] = []
    rows: list[list[float]] = []
    for summary in summaries:
        labels.append(_run_label(summary, labels))
        if use_accuracy:
            values = [100.0 * value for value in summary["per_skill_accuracy"]]
        else:
            values = [float(value) for value in summary["per_skill_val_loss"]]
        rows.append([*values, float(np.mean(values))])
    value_format = "{:.1f}" if use_accuracy else "{:.3f}"
    headers = [*eval_skills, "mean"]
    label_width = max(len("strategy"), *(len(label) for label in labels))
    widths = [max(len(header), 8) for header in headers]
    steps = sorted({summary.get("steps") for summary in summaries}, key=str)
    title = "accuracy (%)" if use_accuracy else "validation loss"
    lines = [
        f"{title} per evaluation skill at the end of training (steps: {', '.join(str(step) for step in steps)})",
        "  ".join(["strategy".ljust(label_width), *(header.rjust(width) for header, width in zip(headers, widths))]),
    ]
    lines.append("-" * len(lines[-1]))
    for label, values in zip(labels, rows):
        cells = [value_format.format(value).rjust(width) for value, width in zip(values, widths)]
        lines.append("  ".join([label.ljust(label_width), *cells]))
    return "\n".join(lines) + "\n"


def plot_comparison(run_dirs: Sequence[str | Path], path: str | Path) -> Path | str:
    """Mean validation loss (log scale) and, when measured, mean accuracy against step, one line per run.

    Args:
        run_dirs: Run directories, each with summary.json and metrics.jsonl.
        path: Output PNG path.

    Returns:
        `path` as a Path.

    Raises:
        ValueError: If there is no run or a run has no evaluation line.
    """
    if not run_dirs:
        raise ValueError("plot_comparison needs at least one run directory")
    curves = []
    labels: list[str] = []
    for run_dir in run_dirs:
        evaluations = _evaluations(run_dir)
        if not evaluations:
            raise ValueError(f"{_join(run_dir, 'metrics.jsonl')!r} has no evaluation lines to plot")
        labels.append(_run_label(_read_summary(run_dir), labels))
        steps = [record["step"] for record in evaluations]
        mean_loss = [float(np.mean(record["val_loss"])) for record in evaluations]
        accuracy_points = [
            (record["step"], 100.0 * float(np.mean(record["accuracy"])))
            for record in evaluations
            if record.get("accuracy") is not None
        ]
        curves.append((steps, mean_loss, accuracy_points))
    has_accuracy = any(accuracy_points for _, _, accuracy_points in curves)
    figure = new_figure(12.0 if has_accuracy else 7.0, 4.0)
    loss_axes = figure.add_subplot(1, 2 if has_accuracy else 1, 1)
    accuracy_axes = figure.add_subplot(1, 2, 2) if has_accuracy else None
    for label, (steps, mean_loss, accuracy_points) in zip(labels, curves):
        loss_axes.plot(steps, mean_loss, marker="o", markersize=3, label=label)
        if accuracy_axes is not None and accuracy_points:
            accuracy_steps, accuracy_values = zip(*accuracy_points)
            accuracy_axes.plot(accuracy_steps, accuracy_values, marker="o", markersize=3, label=label)
    loss_axes.set_yscale("log")
    loss_axes.set_xlabel("training step")
    loss_axes.set_ylabel("mean validation loss over evaluation skills (log scale)")
    loss_axes.set_title("Mean validation loss by strategy")
    loss_axes.grid(True, which="both", alpha=0.3)
    loss_axes.legend(title="strategy", fontsize="small")
    if accuracy_axes is not None:
        accuracy_axes.set_xlabel("training step")
        accuracy_axes.set_ylabel("mean accuracy over evaluation skills (%)")
        accuracy_axes.set_title("Mean accuracy by strategy")
        accuracy_axes.grid(True, alpha=0.3)
        accuracy_axes.legend(title="strategy", fontsize="small")
    return save_figure(figure, path)


def compare_runs(run_dirs: Sequence[str | Path], plot: str | None = None) -> str:
    """`skillit-ray compare`: the comparison table, the runs' `skillit-ray evaluate` results when any has
    them (`lm_evaluation.evaluation_table`), and the comparison plot (default: beside the first run)."""
    first = str(run_dirs[0]).rstrip("/")
    target = plot or f"{first.rsplit('/', 1)[0] if '/' in first else '.'}/comparison.png"
    labels: list[str] = []
    for run_dir in run_dirs:
        labels.append(_run_label(_read_summary(run_dir), labels))
    tables = comparison_table(run_dirs)
    downstream = evaluation_table(run_dirs, labels)
    if downstream:
        tables += "\n" + downstream
    return f"{tables}plot: {plot_comparison(run_dirs, target)}"
