"""Plots and the comparison table (report.py) on tiny synthetic run directories."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from skillit_ray.train import report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_run(directory, strategy: str, final_accuracy: list[float] | None, final_loss: list[float]):
    """A run directory shaped like train.py's output: 2 training skills, 2 evaluation skills, 3 rounds."""
    directory.mkdir(parents=True)
    rounds = [
        {"round": 0, "step": 4, "weights": [0.5, 0.5], "achieved_counts": [16, 16], "val_loss": [1.0, 2.0]},
        {"round": 1, "step": 8, "weights": [0.3, 0.7], "achieved_counts": [10, 22], "val_loss": [0.8, 1.0]},
        {"round": 2, "step": 12, "weights": [0.2, 0.8], "achieved_counts": [6, 26], "val_loss": final_loss},
    ]
    for record in rounds:
        record["accuracy"] = final_accuracy
    metrics = []
    for step, loss in [(0, [1.5, 2.5]), (4, [1.0, 2.0]), (8, [0.8, 1.0]), (12, final_loss)]:
        metrics.append({"kind": "eval", "step": step, "val_loss": loss, "accuracy": final_accuracy})
        metrics.append({"kind": "train", "step": step, "train_loss": 1.0, "learning_rate": 1e-3, "tokens_per_s": 9.0})
    summary = {
        "name": f"run-{strategy}",
        "strategy": strategy,
        "steps": 12,
        "skills": ["first", "second"],
        "eval_skills": ["first", "second"],
        "per_skill_val_loss": final_loss,
        "per_skill_accuracy": final_accuracy,
        "mean_val_loss": float(np.mean(final_loss)),
        "mean_accuracy": None if final_accuracy is None else float(np.mean(final_accuracy)),
        "tokens_per_s": 9.0,
        "wall_s": 1.0,
    }
    (directory / "mixture.jsonl").write_text("".join(json.dumps(record) + "\n" for record in rounds))
    (directory / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in metrics) + "\n")
    (directory / "summary.json").write_text(json.dumps(summary))
    return directory


def assert_png(path):
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_read_jsonl_skips_blank_lines_and_names_bad_line(tmp_path):
    path = tmp_path / "lines.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert report.read_jsonl(path) == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}\nnot json\n')
    with pytest.raises(ValueError, match="line 2"):
        report.read_jsonl(path)


def test_single_run_plots(tmp_path):
    run = write_run(tmp_path / "skillit", "skillit", [1.0, 0.9], [0.1, 0.2])
    assert_png(report.plot_mixture_weights(run))
    assert_png(report.plot_validation_loss(run))
    assert {path.name for path in run.iterdir()} >= {"mixture_weights.png", "val_loss.png"}
    assert not [path for path in run.iterdir() if path.name.startswith(".")]  # no temporaries left


def test_plots_of_hundreds_of_skills_keep_their_axes(tmp_path):
    names = [f"skill_{index:03d}" for index in range(200)]
    run = tmp_path / "many"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"skills": names, "eval_skills": names}))
    rounds = [{"round": index, "weights": [1 / 200] * 200} for index in range(3)]
    (run / "mixture.jsonl").write_text("".join(json.dumps(record) + "\n" for record in rounds))
    evaluations = [{"kind": "eval", "step": step, "val_loss": [1.0 + step] * 200} for step in range(3)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in evaluations))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a 200-entry legend collapses the axes with a UserWarning
        assert_png(report.plot_mixture_weights(run))
        assert_png(report.plot_validation_loss(run))


def test_graph_heatmap_with_negative_entries(tmp_path):
    graph = np.array([[1.0, -0.5, 0.0], [0.5, 2.0, 0.25]])
    path = report.plot_graph_heatmap(graph, ["a", "b"], ["x", "y", "z"], tmp_path / "heatmap.png", "toy graph")
    assert_png(path)
    with pytest.raises(ValueError, match="shape"):
        report.plot_graph_heatmap(graph, ["a"], ["x", "y", "z"], tmp_path / "bad.png", "bad")


def test_comparison_table_accuracy_and_plot(tmp_path):
    runs = [
        write_run(tmp_path / "random", "random", [1.0, 0.5], [0.5, 0.7]),
        write_run(tmp_path / "skillit", "skillit", [1.0, 0.9], [0.1, 0.2]),
    ]
    table = report.comparison_table(runs)
    lines = table.splitlines()
    assert lines[0].startswith("accuracy (%)")
    assert lines[1].split() == ["strategy", "first", "second", "mean"]
    # random: (100.0 + 50.0) / 2 = 75.0; skillit: (100.0 + 90.0) / 2 = 95.0
    assert lines[3].split() == ["random", "100.0", "50.0", "75.0"]
    assert lines[4].split() == ["skillit", "100.0", "90.0", "95.0"]
    assert_png(report.plot_comparison(runs, tmp_path / "comparison.png"))


def test_comparison_table_falls_back_to_loss(tmp_path):
    runs = [
        write_run(tmp_path / "stratified", "stratified", None, [0.5, 0.25]),
        write_run(tmp_path / "skillit", "skillit", [1.0, 0.9], [0.125, 0.25]),
    ]
    table = report.comparison_table(runs)
    assert table.startswith("validation loss")
    # stratified: (0.5 + 0.25) / 2 = 0.375; skillit: (0.125 + 0.25) / 2 = 0.1875 -> 0.188 (3 decimals)
    assert table.splitlines()[3].split() == ["stratified", "0.500", "0.250", "0.375"]
    assert table.splitlines()[4].split() == ["skillit", "0.125", "0.250", "0.188"]
    assert_png(report.plot_comparison(runs[:1], tmp_path / "loss_only.png"))


def test_progress_line_lists_few_weights_and_summarizes_many():
    from skillit_ray.train.progress import describe_weights

    assert describe_weights([0.25, 0.75]) == "weights [0.25 0.75]"
    assert describe_weights([0.001] * 199 + [0.801]) == "weights of 200 skills in [0.001, 0.801]"
