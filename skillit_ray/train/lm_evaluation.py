"""Downstream evaluation's pure parts: a run's skills as lm-evaluation-harness tasks, lm-eval's results as
flat metrics, and the table `skillit-ray compare` prints of them. No Ray, no lm_eval import.

Role in the flow: the run directory (`<run>/model/`, config.json) -> evaluate (`evaluate_run.py`, which
runs lm-eval) -> **lm_evaluation** -> `<run>/evaluation/` and the trackers -> report (`skillit-ray compare`).

A skill task is one JSONL file and one task YAML over it (lm-eval's `dataset_path: json`):

    prompt/answer samples  output_type loglikelihood: the answer's log-likelihood given the prompt, exactly
                           as written (target_delimiter ""); metrics acc (every answer token is the greedy
                           one) and perplexity (exp of minus the mean answer log-likelihood)
    documents              output_type loglikelihood_rolling: every token of the document; metrics
                           word_perplexity, byte_perplexity, bits_per_byte

lm-eval's result keys are "<metric>,<filter>" ("acc,none"); flat, a metric is named "<metric>" under the
filter "none" and "<metric>/<filter>" under any other; standard errors stay in lm_eval_results.json.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from skillit_ray.data.storage import read_file
from skillit_ray.skills.base import Sample
from skillit_ray.train.tracking import safe_name

EVALUATION_DIRECTORY = "evaluation"
"""`<run>/evaluation/`: what the latest `skillit-ray evaluate` of the run measured."""
RESULTS_FILE = "lm_eval_results.json"
"""lm-eval's results dict (results, configs, versions, n-shot, ...), its per-document samples left out."""
SUMMARY_FILE = "summary.json"
"""{task: {metric: value}}, the file `skillit-ray compare` reads."""
SKILL_TASK_PREFIX = "skillit_"
"""Skill tasks are named `skillit_<skill>`, apart from lm-eval's own task names."""
TRACKER_PREFIX = "lm_eval"
NO_FILTER = "none"
_UNSAFE_TASK_CHARACTERS = re.compile(r"[^0-9A-Za-z_\-.]")


def skill_task_name(skill: str) -> str:
    """The lm-eval task of an evaluation skill: `skillit_<skill>`, other characters than [0-9A-Za-z_-.] as "_"."""
    return SKILL_TASK_PREFIX + _UNSAFE_TASK_CHARACTERS.sub("_", skill)


def skill_task_documents(skill: str, items: Sequence[Sample | str]) -> tuple[str, list[dict[str, str]]]:
    """The lm-eval output type of a skill's validation items and their JSONL documents.

    Args:
        skill: The evaluation skill (named in errors).
        items: Its validation items: all prompt/answer samples, or all documents.

    Returns:
        ("loglikelihood", [{"prompt", "answer"}, ...]) for samples (the suffix after an answer is trained
        on but never scored), ("loglikelihood_rolling", [{"text"}, ...]) for documents.

    Raises:
        ValueError: If there is no item or the items mix samples and documents.
    """
    if not items:
        raise ValueError(f"evaluation skill {skill!r} has no validation items; set data.num_val_per_skill > 0")
    if all(isinstance(item, Sample) for item in items):
        return "loglikelihood", [{"prompt": item.prompt, "answer": item.answer} for item in items]
    if all(isinstance(item, str) for item in items):
        return "loglikelihood_rolling", [{"text": item} for item in items]
    raise ValueError(f"evaluation skill {skill!r} mixes prompt/answer samples and documents in its validation data")


def skill_task_config(task: str, output_type: str, data_file: Path, cache_directory: Path) -> dict[str, Any]:
    """The task YAML's content: `dataset_path: json` over `data_file` (its one split, "test")."""
    config: dict[str, Any] = {
        "task": task,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file)}, "cache_dir": str(cache_directory)},
        "test_split": "test",
        "output_type": output_type,
    }
    if output_type == "loglikelihood":
        config |= {"doc_to_text": "prompt", "doc_to_target": "answer", "target_delimiter": ""}
        metrics = ["acc", "perplexity"]
    else:
        config |= {"doc_to_text": "", "doc_to_target": "text"}
        metrics = ["word_perplexity", "byte_perplexity", "bits_per_byte"]
    higher_is_better = {"acc": True}
    aggregation = {"acc": "mean", "perplexity": "perplexity", "word_perplexity": "weighted_perplexity",
                   "byte_perplexity": "weighted_perplexity", "bits_per_byte": "bits_per_byte"}  # fmt: skip
    config["metric_list"] = [
        {"metric": name, "aggregation": aggregation[name], "higher_is_better": higher_is_better.get(name, False)}
        for name in metrics
    ]
    config["metadata"] = {"version": 1.0}
    return config


def write_skill_tasks(directory: Path, items_by_skill: dict[str, Sequence[Sample | str]]) -> list[str]:
    """One JSONL file and one task YAML per skill in `directory` (an lm-eval include path); their task names."""
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for skill, items in items_by_skill.items():
        task = skill_task_name(skill)
        output_type, documents = skill_task_documents(skill, items)
        data_file = directory / f"{task}.jsonl"
        data_file.write_text("".join(json.dumps(document) + "\n" for document in documents))
        config = skill_task_config(task, output_type, data_file, directory / "datasets_cache")
        (directory / f"{task}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        names.append(task)
    return names


# ----------------------------------------------------------------------------- results


def results_for_file(evaluation: dict[str, Any]) -> dict[str, Any]:
    """lm-eval's results dict without its per-document samples (they hold every prompt, and can be large)."""
    return {key: value for key, value in evaluation.items() if key != "samples"}


def flatten_results(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """{task: {metric: value}} from lm-eval's `results` ({task: {"acc,none": 0.5, "acc_stderr,none": ...}}).

    Standard errors, aliases and sample counts are left out; a value that is not a finite number (lm-eval
    writes "N/A" for a standard error it did not compute, NaN for an undefined metric) becomes None."""
    flat: dict[str, dict[str, float | None]] = {}
    for task, values in results.items():
        metrics: dict[str, float | None] = {}
        for key, value in values.items():
            metric, separator, filter_name = key.partition(",")
            if not separator or metric.endswith("_stderr"):
                continue
            name = metric if filter_name == NO_FILTER else f"{metric}/{filter_name}"
            number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
            metrics[name] = number if math.isfinite(number) else None
        flat[task] = metrics
    return flat


def tracker_metrics(summary: dict[str, dict[str, float | None]]) -> dict[str, float]:
    """The summary's numbers as the trackers name them: `lm_eval/<task>/<metric>`."""
    return {
        f"{TRACKER_PREFIX}/{safe_name(task)}/{safe_name(metric)}": value
        for task, metrics in summary.items()
        for metric, value in metrics.items()
        if value is not None
    }


# ----------------------------------------------------------------------------- compare


def read_evaluation_summary(run_directory: str | Path) -> dict[str, dict[str, float | None]] | None:
    """`<run>/evaluation/summary.json` (local or s3:// / gs://), None when the run was not evaluated."""
    path = f"{str(run_directory).rstrip('/')}/{EVALUATION_DIRECTORY}/{SUMMARY_FILE}"
    try:
        return json.loads(read_file(path))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def evaluation_table(run_directories: Sequence[str | Path], labels: Sequence[str]) -> str:
    """The runs' downstream results side by side: a row per run (labelled as in the comparison table), a
    column per task and metric; "-" where a run lacks one. Empty when no run was evaluated."""
    summaries = [read_evaluation_summary(directory) for directory in run_directories]
    columns: list[tuple[str, str]] = []
    for summary in summaries:
        for task, metrics in (summary or {}).items():
            columns.extend((task, metric) for metric in metrics if (task, metric) not in columns)
    if not columns:
        return ""
    headers = [f"{task} {metric}" for task, metric in columns]
    label_width = max(len("strategy"), *(len(label) for label in labels))
    widths = [max(len(header), 8) for header in headers]
    lines = [
        f"lm-evaluation-harness ({EVALUATION_DIRECTORY}/{SUMMARY_FILE} of each run; skillit-ray evaluate)",
        "  ".join(["strategy".ljust(label_width), *(header.rjust(width) for header, width in zip(headers, widths))]),
    ]
    lines.append("-" * len(lines[-1]))
    for label, summary in zip(labels, summaries):
        values = [(summary or {}).get(task, {}).get(metric) for task, metric in columns]
        cells = ["-" if value is None else f"{value:.4g}" for value in values]
        lines.append("  ".join([label.ljust(label_width), *(cell.rjust(width) for cell, width in zip(cells, widths))]))
    return "\n".join(lines) + "\n"
