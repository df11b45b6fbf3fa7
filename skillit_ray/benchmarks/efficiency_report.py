"""The efficiency benchmark's report: markdown tables and learning-curve plots with seed bands.

Role in the flow: efficiency (results.json) -> **efficiency_report** -> docs/benchmarks/efficiency.md and
`<out>/<setting>.png`. Every figure in the report is read from the benchmark's own results; the
command, the machine and the wall time head the page.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from skillit_ray.data.storage import write_file
from skillit_ray.train.report import new_figure, save_figure


def _format(mean: float, std: float, metric: str) -> str:
    scale, digits = (100.0, 1) if metric == "mean_accuracy" else (1.0, 3)
    return f"{mean * scale:.{digits}f} +/- {std * scale:.{digits}f}"


def _steps(reached: list[int | None]) -> str:
    hits = [step for step in reached if step is not None]
    if not reached:
        return "-"
    if len(hits) < len(reached):
        return f"{len(hits)}/{len(reached)} seeds" + (f" (mean {np.mean(hits):.0f})" if hits else "")
    return f"{np.mean(hits):.0f} +/- {np.std(hits, ddof=1) if len(hits) > 1 else 0:.0f}"


def setting_table(result: dict[str, Any], skills: list[str]) -> str:
    """One row per strategy: final headline, paired difference to stratified, steps, per skill, wall time."""
    metric, summary = result["metric"], result["summary"]
    unit = "accuracy %" if metric == "mean_accuracy" else "val loss"
    header = ["strategy", f"final mean {unit}", "minus stratified (paired)", "steps to stratified's final",
              *skills, "s / run"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    order = sorted(summary, key=lambda label: summary[label]["final_mean"], reverse=metric == "mean_accuracy")
    for label in order:
        entry = summary[label]
        difference = np.asarray(entry["difference_to_stratified"])
        paired = _format(difference.mean(), difference.std(ddof=1) if difference.size > 1 else 0.0, metric)
        per_skill = [_format(mean, std, metric) for mean, std in zip(entry["per_skill_mean"], entry["per_skill_std"])]
        cells = [label, _format(entry["final_mean"], entry["final_std"], metric), paired,
                 _steps(entry["steps_to_stratified_final"]), *per_skill, f"{entry['wall_s_mean']:.0f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_setting(name: str, runs: list[dict[str, Any]], metric: str, path: Path) -> Path | str:
    """Headline metric over steps, one line per strategy (mean over seeds) with a one-std band."""
    figure = new_figure(8.0, 4.5)
    axes = figure.add_subplot()
    by_strategy: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_strategy.setdefault(run["strategy"], []).append(run)
    for label, strategy_runs in sorted(by_strategy.items()):
        steps = strategy_runs[0]["steps"]
        key = "accuracy" if metric == "mean_accuracy" else "val_loss"
        curves = np.asarray([[np.mean(values) for values in run[key]] for run in strategy_runs], dtype=np.float64)
        scale = 100.0 if metric == "mean_accuracy" else 1.0
        mean, std = curves.mean(axis=0) * scale, curves.std(axis=0) * scale
        width = 2.5 if label in ("skillit", "stratified") else 1.2
        axes.plot(steps, mean, label=f"{label} ({len(strategy_runs)} seeds)", linewidth=width)
        axes.fill_between(steps, mean - std, mean + std, alpha=0.15)
    axes.set_xlabel("training step")
    axes.set_ylabel("mean accuracy over skills (%)" if metric == "mean_accuracy" else "mean validation loss")
    axes.set_title(f"{name}: mean over seeds, band = one std")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    return save_figure(figure, path)


def _run_minutes(runs: list[dict[str, Any]], results: dict[str, Any]) -> float:
    """Minutes of run time (each run's own wall time) of the reported settings and their tuning runs."""
    reported = set(results["settings"])
    return sum(run["wall_s"] for run in runs if run["setting"].split("/")[0] in reported) / 60


def write_report(results: dict[str, Any], directory: Path, settings: dict[str, Any], report_path: str = "") -> str:
    """Plots per setting and the markdown report (default `<directory>/RESULTS.md`); returns its path."""
    runs = [json.loads(line) for line in (directory / "runs.jsonl").read_text().splitlines() if line.strip()]
    machine = results["machine"]
    sections = [
        "# Results: does the mixture make runs learn faster?\n",
        f"Measured with `python -m skillit_ray.benchmarks efficiency` (profile `{results['profile']}`, seeds "
        f"{', '.join(map(str, results['seeds']))}) on {machine['cpu_count']} CPU cores ({machine['platform']}), "
        f"{machine['workers'] or 'one after another, no'} runs at a time with one torch thread each; this run took "
        f"{results['wall_s'] / 60:.1f} min ({_reused(results)}). The runs reported here "
        f"took {_run_minutes(runs, results) / 60:.0f} h {_run_minutes(runs, results) % 60:.0f} min of run time in "
        "all (tuning runs included, graph learning not), so about that divided by the runs at a time of wall "
        "time. Mean +/- std over seeds; the difference to stratified is paired by seed (same data order and "
        "initial weights).\n",
    ]
    path = report_path or str(directory / "RESULTS.md")
    choices = choice_table(results)
    if choices:
        sections += ["## The pipeline's choice against stratified and the best baseline\n",
                     "The choice is made on the tuning seed only (Skill-it at its tuned eta against the baselines "
                     "`skillit-ray tune` scores: stratified, and target_only in fine-tuning); the columns are the "
                     "reported seeds, differences paired by seed (mean +/- std). The best baseline is the best "
                     "strategy other than Skill-it's family on the reported seeds.\n", choices + "\n"]  # fmt: skip
    for name, result in results["settings"].items():
        skills = _skill_names(result, runs, name)
        plot = plot_setting(name, [run for run in runs if run["setting"] == name], result["metric"],
                            directory / f"{name}.png")  # fmt: skip
        sections += [
            f"## {result['title']}\n",
            f"Config: `{' '.join(result['overrides'])}`. {result.get('notes', '')}\n",
            *pipeline_lines(result),
            setting_table(result, skills) + "\n",
            f"![{name}]({os.path.relpath(str(plot), Path(path).parent)})\n",  # the plot as seen from the report
        ]
    write_file(path, "\n".join(sections).encode())
    return path


SKILLIT_FAMILY = ("skillit", "static", "no_graph", "skillit_paper")


def _paired(summary: dict[str, Any], label: str, other: str, metric: str) -> str:
    """Mean +/- std over seeds of `label` minus `other`, paired by seed."""
    mine = dict(zip(summary[label]["seeds"], summary[label]["finals"]))
    theirs = dict(zip(summary[other]["seeds"], summary[other]["finals"]))
    difference = np.asarray([mine[seed] - theirs[seed] for seed in mine if seed in theirs])
    if difference.size == 0:
        return "-"
    return _format(difference.mean(), difference.std(ddof=1) if difference.size > 1 else 0.0, metric)


def choice_table(results: dict[str, Any]) -> str:
    """Per setting with a pipeline choice: the choice, its final, stratified's, the best baseline's, and the
    paired differences of the choice and of Skill-it to them."""
    rows = []
    for name, result in results["settings"].items():
        choice, summary, metric = result.get("pipeline_choice") or {}, result["summary"], result["metric"]
        winner = choice.get("winner")
        if winner not in summary or "stratified" not in summary or "finals" not in summary[winner]:
            continue
        lower = metric != "mean_accuracy"
        baselines = [label for label in summary if label not in SKILLIT_FAMILY]
        best = (min if lower else max)(baselines, key=lambda label: summary[label]["final_mean"])
        cells = [name, winner, _format(summary[winner]["final_mean"], summary[winner]["final_std"], metric),
                 _format(summary["stratified"]["final_mean"], summary["stratified"]["final_std"], metric),
                 f"{best}: {_format(summary[best]['final_mean'], summary[best]['final_std'], metric)}",
                 _paired(summary, winner, "stratified", metric), _paired(summary, winner, best, metric),
                 _paired(summary, "skillit", "stratified", metric) if "skillit" in summary else "-"]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    if not rows:
        return ""
    header = ["setting", "pipeline's choice", "its final", "stratified", "best baseline", "choice minus stratified",
              "choice minus best baseline", "Skill-it minus stratified"]  # fmt: skip
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *rows])


def _reused(results: dict[str, Any]) -> str:
    reused = results.get("runs_reused")
    if reused is None:
        return "runs already in runs.jsonl were reused"
    return "every run trained in this call" if reused == 0 else f"{reused} runs came from runs.jsonl, not trained again"


def pipeline_lines(result: dict[str, Any]) -> list[str]:
    """What the default pipeline chose for the setting: the learned graph, its warning, the tuned eta."""
    lines = []
    if result.get("graph_json"):
        document = json.loads(Path(result["graph_json"]).read_text())
        rows = "; ".join(f"{skill}: [{', '.join(f'{value:.2f}' for value in row)}]"
                         for skill, row in zip(document["train_skills"], document["graph"]))  # fmt: skip
        learned = f" in {result['graph_learning_s']:.0f} s" if result.get("graph_learning_s") else ""
        lines.append(
            f"Skills graph learned by the system's own short runs{learned} ({document['method']}, "
            f"{document['steps']} steps, {document['normalization']}, common drop {document.get('common_drop')}; "
            f"rows = training skills, columns = {', '.join(document['eval_skills'])}): {rows}.\n"
        )
        if document.get("mixture_warning"):
            lines.append(f"Graph warning at the configured eta: {document['mixture_warning']}\n")
    if result.get("tuned_eta") is not None:
        tried = ", ".join(
            f"{label.split('=')[1]}: {value:.3f}"
            for label, value in sorted(
                result["tuning"]["final_by_eta"].items(), key=lambda item: float(item[0].split("=")[1])
            )
        )
        seed = result["tuning"]["seed"]
        lines.append(f"Skill-it's eta chosen on tuning seed {seed} (final headline by eta: {tried}): "
                     f"**eta = {result['tuned_eta']:g}**, used by skillit, static and no_graph.\n")  # fmt: skip
    choice = result.get("pipeline_choice") or {}
    if choice:
        scored = ", ".join(f"{label} {value:.3f}" for label, value in choice["tuning_seed_finals"].items())
        lines.append(f"The pipeline's choice on the same seed ({scored}): **{choice['winner']}**.\n")
    return lines


def _skill_names(result: dict[str, Any], runs: list[dict[str, Any]], name: str) -> list[str]:
    named = next((run["eval_skills"] for run in runs if run["setting"] == name and run.get("eval_skills")), None)
    count = len(next(iter(result["summary"].values()))["per_skill_mean"])
    return list(named) if named and len(named) == count else [f"skill {index + 1}" for index in range(count)]
