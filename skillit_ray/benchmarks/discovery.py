"""`python -m skillit_ray.benchmarks discovery`: do loss trajectories recover hidden skills better than embeddings?

Role in the flow: a benchmark beside the product (not a test). For each setting it writes a table whose
true skill column is hidden from the method (`--true-skill-column`: scoring only), runs the whole
`skillit-ray discover` (`discover.py`: seeded short runs on Ray Tune, scoring with Ray Data,
k-means), and reports matching accuracy and adjusted Rand index for the loss trajectories and for the
embedding baseline (same model, same clusterer), next to the paper's figures (section 2.3: 61% from
10 runs' loss trajectories, 24-38% from pre-trained embeddings, on its synthetic skills).

Settings: `text`, the efficiency benchmark's real-text corpus (`corpus.py`, 5 sources; sources
hidden); `lego` (5 skills), `addition` (3 skills) and `staircase` (4 skills, the demo's chain, whose
skills a tiny model learns one after another) from the generators, as prompt/answer rows so the loss
is the answer's, as the paper scores them. A setting whose `discovery.json` holds the same options is
read back, not run again.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from skillit_ray.benchmarks.registry import Benchmark, add_overrides
from skillit_ray.data.storage import write_file

STAIRCASE_OPTIONS = {"num_skills": 4, "chain_length": 12, "negation_probability": 0.25}
"""The demo's and the efficiency benchmark's staircase."""
PAPER = {"loss_trajectories": "61% (10 runs)", "embeddings": "24-38% (pre-trained embeddings)"}
"""Skill-it section 2.3, its synthetic skills."""
SETTINGS: dict[str, dict[str, Any]] = {
    "text": {"num_skills": 5, "tokenizer_vocab_size": 4096, "steps": 200, "overrides": ["data.sequence_length=128"]},
    "lego": {"num_skills": 5, "tokenizer_vocab_size": 300, "steps": 200, "overrides": ["data.sequence_length=0"]},
    "addition": {"num_skills": 3, "tokenizer_vocab_size": 300, "steps": 200, "overrides": ["data.sequence_length=0"]},
    "staircase": {
        "num_skills": 4,
        "tokenizer_vocab_size": 300,
        "steps": 800,
        "overrides": ["data.sequence_length=0", "train.batch_size=32"],
    },  # the demo's batch
}
"""Per setting: skills, tokenizer size, short-run steps (unless --steps), short-run overrides."""


def synthetic_table(family: str, rows_per_skill: int, path: Path, seed: int = 0) -> Path:
    """Every skill's first `rows_per_skill` training samples, interleaved, as prompt/answer rows with their skill."""
    from skillit_ray.skills.registry import get_skill_generator

    generator = get_skill_generator(family, **(STAIRCASE_OPTIONS if family == "staircase" else {}))
    rows: dict[str, list[str]] = {"prompt": [], "answer": [], "skill": []}
    for index in range(rows_per_skill):
        for skill_index, skill in enumerate(generator.skill_names):
            sample = generator.sample_by_index(skill_index, index, seed)
            rows["prompt"].append(sample.prompt)
            rows["answer"].append(sample.answer)
            rows["skill"].append(skill)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows), path)
    return path


def setting_table(name: str, work: Path, rows_per_skill: int) -> dict[str, str]:
    """(input table, which columns) of a setting, built under `work`."""
    if name == "text":
        from skillit_ray.data.prepare.corpus import build_corpus_table

        table = work / "corpus.parquet"
        if not table.is_file():
            build_corpus_table(str(table), rows_per_skill)
        return {"input": str(table), "text_column": "text", "true_skill_column": "source"}
    table = synthetic_table(name, rows_per_skill, work / f"{name}.parquet")
    return {"input": str(table), "prompt_column": "prompt", "answer_column": "answer", "true_skill_column": "skill"}


def finished_report(options) -> dict[str, Any] | None:
    """The setting's report when an earlier run wrote its trajectories with these options (clustered again
    when only the clustering options differ), else None."""
    from dataclasses import asdict

    from skillit_ray.discovery.discover import CLUSTERING_OPTIONS, recluster

    path = Path(options.out) / "discovery.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    wanted = json.loads(json.dumps({key: value for key, value in asdict(options).items() if key != "overwrite"}))
    if {key: value for key, value in report.get("options", {}).items() if key not in CLUSTERING_OPTIONS} != {
        key: value for key, value in wanted.items() if key not in CLUSTERING_OPTIONS
    }:
        return None
    return report if report["options"] == wanted else {**recluster(options), "seconds": report["seconds"]}


def normalization_scores(out: Path, num_skills: int, seed: int, fit_rows: int) -> dict[str, dict[str, float]]:
    """Accuracy and adjusted Rand index of the loss trajectories under every normalization (same runs)."""
    import numpy as np

    from skillit_ray.discovery.clustering import (
        TRAJECTORY_NORMALIZATIONS,
        adjusted_rand_index,
        fit_clusters,
        matching_accuracy,
        trajectory_features,
    )

    losses = np.load(out / "trajectories.npz")["losses"]
    truth = pq.read_table(out / "discovered.parquet", columns=["true_skill"]).column(0).to_pylist()
    scores = {}
    for normalization in TRAJECTORY_NORMALIZATIONS:
        labels, _ = fit_clusters(trajectory_features(losses, normalization), num_skills, seed, fit_rows)
        scores[normalization] = {"accuracy": matching_accuracy(truth, labels),
                                 "adjusted_rand_index": adjusted_rand_index(truth, labels)}  # fmt: skip
    return scores


def discovery_benchmark(out: str, settings: list[str], rows_per_skill: int, runs: int, steps: int,
                        checkpoints: int, overrides: list[str]) -> dict[str, Any]:  # fmt: skip
    """Discover every setting's skills; the figures per method."""
    from skillit_ray.discovery.discover import DiscoverOptions, discover

    work = Path(out)
    results = {}
    for name in settings:
        setting = SETTINGS[name]
        columns = setting_table(name, work / "tables", rows_per_skill)
        options = DiscoverOptions(
            out=str(work / name), num_skills=setting["num_skills"], runs=runs, steps=steps or setting["steps"],
            checkpoints=checkpoints, tokenizer_vocab_size=setting["tokenizer_vocab_size"],
            overrides=setting["overrides"] + overrides, overwrite=True, **columns,
        )  # fmt: skip
        report = finished_report(options) or discover(options)
        results[name] = {"rows": report["rows"], "num_skills": setting["num_skills"], "runs": runs,
                         "steps": options.steps,
                         "checkpoint_steps": report["checkpoint_steps"], "seconds": report["seconds"],
                         "methods": report["methods"], "normalization": options.normalization,
                         "by_normalization": normalization_scores(Path(options.out), options.num_skills, options.seed,
                                                                  options.fit_rows)}  # fmt: skip
        print(json.dumps({name: results[name]}), flush=True)
    return {"benchmark": "discovery", "settings": results, "paper": PAPER}


def markdown(result: dict[str, Any]) -> str:
    """The figures as a markdown table."""
    lines = [
        "| setting | rows | skills (chance) | runs x checkpoints (steps) | loss trajectories: accuracy | ARI "
        "| embeddings: accuracy | ARI | short runs s | scoring s |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, entry in result["settings"].items():
        loss, embedding = entry["methods"]["loss_trajectories"], entry["methods"]["embeddings"]
        lines.append(
            f"| {name} | {entry['rows']} | {entry['num_skills']} ({1 / entry['num_skills']:.0%}) "
            f"| {entry['runs']} x {len(entry['checkpoint_steps'])} ({entry['steps']}) "
            f"| {loss['accuracy']:.1%} | {loss['adjusted_rand_index']:.3f} | {embedding['accuracy']:.1%} "
            f"| {embedding['adjusted_rand_index']:.3f} | {entry['seconds']['short_runs']} "
            f"| {entry['seconds']['scoring']} |"
        )
    names = list(next(iter(result["settings"].values()))["by_normalization"]) if result["settings"] else []
    lines += [
        "",
        f"Loss trajectories under each normalization (same runs; the table above uses "
        f"`--normalization {next(iter(result['settings'].values()))['normalization'] if names else ''}`), "
        "accuracy / ARI:",
        "",
        "| setting | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for name, entry in result["settings"].items():
        scores = entry["by_normalization"]
        cells = [f"{scores[key]['accuracy']:.1%} / {scores[key]['adjusted_rand_index']:.3f}" for key in names]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Paper (section 2.3): loss trajectories {PAPER['loss_trajectories']}, embeddings {PAPER['embeddings']}.",
    ]
    return "\n".join(lines) + "\n"


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    """Every setting asked for; writes the JSON and the markdown report."""
    settings = [name for name in arguments.settings.split(",") if name] or list(SETTINGS)
    result = discovery_benchmark(arguments.out, settings, arguments.rows_per_skill, arguments.runs,
                                 arguments.steps, arguments.checkpoints, arguments.overrides)  # fmt: skip
    steps = f" --steps {arguments.steps}" if arguments.steps else ""
    command = (f"python -m skillit_ray.benchmarks discovery --settings {','.join(settings)} --rows-per-skill "
               f"{arguments.rows_per_skill} --runs {arguments.runs}{steps} "
               f"--checkpoints {arguments.checkpoints}")  # fmt: skip
    write_file(arguments.report, f"# Skill discovery: hidden skills recovered\n\n`{command}` "
               f"(skillit_ray/benchmarks/discovery.py), {os.cpu_count()} CPU cores, no GPU.\n\n{markdown(result)}\n"
               f"```json\n{json.dumps(result, indent=2)}\n```\n".encode())  # fmt: skip
    return result


def add_discovery_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags `discovery` and `discovery-downstream` share."""
    parser.add_argument("--out", default="runs/discovery-benchmark", help="tables and outputs")
    parser.add_argument("--report", default="docs/benchmarks/discovery.md", help="the markdown report")
    parser.add_argument("--rows-per-skill", type=int, default=400, help="rows of each hidden skill")
    parser.add_argument("--runs", type=int, default=4, help="short runs")


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_discovery_arguments(parser)
    parser.add_argument("--settings", default="", help="comma-separated settings (default all)")
    parser.add_argument("--steps", type=int, default=0, help="steps of each short run (0: per setting)")
    parser.add_argument("--checkpoints", type=int, default=4, help="checkpoints scored per run")
    add_overrides(parser)


BENCHMARKS = [Benchmark("discovery", "hidden skills recovered by loss trajectories vs embeddings", run, _arguments)]
