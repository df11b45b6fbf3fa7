"""`python -m skillit_ray.benchmarks discovery-downstream`: Skill-it on discovered skills vs true skills vs stratified.

Role in the flow: a benchmark beside the product. On the staircase (the setting where a tiny model
learns skills one after another, and where loss trajectories beat embeddings in docs/benchmarks/discovery.md):

1. `skillit-ray discover` (`discover.py`) finds 4 skills in `rows_per_skill` x 4 unlabeled
   prompt/answer rows whose true skill is hidden from it.
2. Two training tables hold the same rows: one labelled with the discovered skills, one with the true
   ones. Both carry the same held-out evaluation sets (the generator's validation samples of every true
   skill, as skills `eval_<skill>` with no training rows), so every run is scored on the same rows.
3. Each table is trained in the out-of-domain setting (training skills -> those evaluation skills):
   the graph is learned by the usual short runs (Algorithm 3, `graph` defaults), then Skill-it
   (eta `DEMO_ETA`) runs for every seed; stratified sampling over the true skills is the baseline.
   Runs are in process (`train.run_local_training`: the same loop and sampler math as Ray Train).

The metric is the final answer-token loss averaged over the 4 evaluation sets, mean +/- sample std (ddof 1) over seeds.
Prompt/answer text tables are scored by loss only: a byte-level BPE does not give every answer one token.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from skillit_ray.benchmarks.discovery import STAIRCASE_OPTIONS, add_discovery_arguments, synthetic_table
from skillit_ray.benchmarks.registry import Benchmark
from skillit_ray.data.storage import write_file
from skillit_ray.tune.demo import DEMO_ETA

TRAINING = [
    "model.size=tiny", "train.steps=1200", "train.batch_size=32", "train.learning_rate=1e-3",
    "train.eval_every_n_steps=200", "mixture.num_rounds=6", "mixture.window=3", "graph.steps=200",
    "graph.cpus_per_trial=1", "data.num_val_per_skill=99", "data.sequence_length=0",
]  # fmt: skip
"""The demo's training settings; every skill holds out 99 rows (an evaluation skill: 99 of its 100)."""
VARIANTS = {
    "skillit_discovered": ("skill", ["mixture.strategy=skillit", f"mixture.eta={DEMO_ETA}"]),
    "skillit_true": ("true_skill", ["mixture.strategy=skillit", f"mixture.eta={DEMO_ETA}"]),
    "stratified_true": ("true_skill", ["mixture.strategy=stratified"]),
}
"""Variant -> (which skill column labels the training rows, strategy overrides)."""


def training_tables(discovered: Path, out: Path) -> dict[str, Path]:
    """The discovered rows labelled by `skill` and by `true_skill`, each plus the true skills' evaluation sets."""
    from skillit_ray.skills.registry import get_skill_generator

    generator = get_skill_generator("staircase", **STAIRCASE_OPTIONS)
    held_out = {"prompt": [], "answer": [], "label": []}
    for index, skill in enumerate(generator.skill_names):
        for sample in generator.validation_set(index, 100):
            held_out["prompt"].append(sample.prompt)
            held_out["answer"].append(sample.answer)
            held_out["label"].append(f"eval_{skill}")
    rows = pq.read_table(discovered).to_pydict()
    tables = {}
    for column in ("skill", "true_skill"):
        table = {"prompt": rows["prompt"] + held_out["prompt"], "answer": rows["answer"] + held_out["answer"],
                 "skill": [str(label) for label in rows[column]] + held_out["label"]}  # fmt: skip
        tables[column] = out / f"train_by_{column}.parquet"
        pq.write_table(pa.table(table), tables[column])
    return tables


def _config(table: Path, storage: Path, name: str, extra: list[str]):
    """One run on a training table: its skills split into training skills and the `eval_` evaluation sets."""
    from skillit_ray.config.job import load_config

    skills = sorted({str(value) for value in pq.read_table(table, columns=["skill"]).column(0).to_pylist()})
    train = [skill for skill in skills if not skill.startswith("eval_")]
    evaluate = [skill for skill in skills if skill.startswith("eval_")]
    return load_config(None, [
        *TRAINING, "data.source=table", f"data.table.path={table}", "data.table.prompt_column=prompt",
        "data.table.answer_column=answer", f"data.train_skills={json.dumps(train)}",
        f"data.eval_skills={json.dumps(evaluate)}",
        "mixture.setting=out_of_domain", f"data.tokenizer_path={storage / 'discovered' / 'tokenizer'}",
        f"run.storage_path={storage}", f"run.name={name}", *extra,
    ])  # fmt: skip


def downstream(out: str, seeds: list[int], rows_per_skill: int, runs: int) -> dict[str, Any]:
    """Discover, learn each labelling's graph, train every variant x seed; mean +/- std per variant."""
    from skillit_ray.benchmarks.discovery import finished_report
    from skillit_ray.discovery.discover import DiscoverOptions, discover
    from skillit_ray.train.launch import connect_ray
    from skillit_ray.train.local import run_local_training
    from skillit_ray.tune.graph_runs import learn_graph

    work = Path(out).resolve()
    table = synthetic_table("staircase", rows_per_skill, work / "staircase.parquet")
    options = DiscoverOptions(input=str(table), out=str(work / "discovered"), num_skills=4, prompt_column="prompt",
                              answer_column="answer", true_skill_column="skill", runs=runs, steps=800,
                              tokenizer_vocab_size=300, overwrite=True,
                              overrides=["data.sequence_length=0", "train.batch_size=32"])  # fmt: skip
    report = finished_report(options) or discover(options)
    tables = training_tables(work / "discovered" / "discovered.parquet", work)
    results: dict[str, Any] = {"discovery": report["methods"], "seeds": seeds, "variants": {}}
    graphs = {}
    for column in ("skill", "true_skill"):
        graph_config = _config(tables[column], work, f"graph_{column}", ["mixture.strategy=stratified"])
        connect_ray(graph_config)
        graphs[column] = learn_graph(graph_config)["graph_json"]
    for variant, (column, extra) in VARIANTS.items():
        finals = []
        for seed in seeds:
            config = _config(tables[column], work, f"{variant}_{seed}",
                             [*extra, f"train.seed={seed}", f"mixture.graph_path={graphs[column]}"])  # fmt: skip
            last = run_local_training(config)["evaluations"][-1]
            finals.append(
                {"seed": seed, "mean_val_loss": float(np.mean(last["val_loss"])), "val_loss": last["val_loss"]}
            )
            print(json.dumps({variant: finals[-1]}), flush=True)
        losses = [entry["mean_val_loss"] for entry in finals]
        std = float(np.std(losses, ddof=1)) if len(losses) > 1 else 0.0  # sample std, as the other benchmarks
        results["variants"][variant] = {"runs": finals, "mean_val_loss": float(np.mean(losses)), "std_val_loss": std}
    return results


def markdown(result: dict[str, Any]) -> str:
    """The figures as a markdown table."""
    lines = ["| training skills, strategy | final mean answer loss (mean +/- sample std over seeds) | per seed |",
             "|---|---:|---|"]  # fmt: skip
    for variant, entry in result["variants"].items():
        per_seed = ", ".join(f"{run['mean_val_loss']:.4f}" for run in entry["runs"])
        lines.append(f"| {variant} | {entry['mean_val_loss']:.4f} +/- {entry['std_val_loss']:.4f} | {per_seed} |")
    discovery = result["discovery"]["loss_trajectories"]
    lines += ["", f"Discovered skills: matching accuracy {discovery['accuracy']:.1%}, adjusted Rand index "
              f"{discovery['adjusted_rand_index']:.3f}, cluster sizes {discovery['cluster_sizes']}."]  # fmt: skip
    return "\n".join(lines) + "\n"


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    """Every seed; appends its markdown to the discovery report."""
    seeds = [int(seed) for seed in arguments.seeds.split(",")]
    result = downstream(arguments.out, seeds, arguments.rows_per_skill, arguments.runs)
    command = (f"python -m skillit_ray.benchmarks discovery-downstream --rows-per-skill {arguments.rows_per_skill} "
               f"--runs {arguments.runs} --seeds {arguments.seeds}")  # fmt: skip
    write_file(arguments.report, f"# Skill-it on discovered skills\n\n`{command}` "
               f"(skillit_ray/benchmarks/discovery_downstream.py), {os.cpu_count()} CPU cores, no GPU.\n\n"
               f"{markdown(result)}\n```json\n{json.dumps(result, indent=2)}\n```\n".encode())  # fmt: skip
    return result


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_discovery_arguments(parser)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")


BENCHMARKS = [
    Benchmark(
        "discovery-downstream", "Skill-it on discovered skills vs on the true skills vs stratified", run, _arguments
    )
]
