"""Benchmarks that print JSON (performance claims live here, never in timed unit tests).

Role in the flow: measures the whole system against plain PyTorch in the same run.

    python -m skillit_ray.benchmarks throughput [--repeats N] [--set k=v ...]   full pipeline vs a plain loop
    python -m skillit_ray.benchmarks graph [--set k=v ...]        Tune-parallel graph runs vs sequential
    python -m skillit_ray.benchmarks many-skills [--skills N] [--set k=v ...]   N parquet text skills end to end
    python -m skillit_ray.benchmarks efficiency [--settings a,b] [--seeds 0,1,2] every strategy x seeds
    python -m skillit_ray.benchmarks chaos [--faults-per-kind N]  failure drill vs the uninterrupted run (chaos.py)
    python -m skillit_ray.benchmarks sampler                      update time by skills, publish time by workers
    python -m skillit_ray.benchmarks data-path                    streams' tokens/s vs plain read + tokenize
    python -m skillit_ray.benchmarks prerequisites                a target alone vs with its prerequisites
    python -m skillit_ray.benchmarks lego-from-base --base DIR    LEGO from a pretrained base vs from scratch

`throughput`: the full pipeline against a plain PyTorch loop in one run (`throughput_benchmark.py`).

`graph`: the k (linear) or k + k(k-1)/2 (brute force) short runs one after another in the driver
process, then on Ray Tune: every run in one trial on one slot (one core), one run per trial (every
trial pays a process start-up), and the runs batched into one trial per slot (`graph.runs_per_trial=0`:
start-up paid once per slot), with one slot per core.

`many-skills`: writes N small text skills as parquet (2 part files each) and times one stratified
`run_training` over them end to end; compare `--set data.parquet.reader=ray_data` and `=arrow`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
import time

from skillit_ray.config.job import load_config


def graph_speedup(overrides: list[str]) -> dict:
    from skillit_ray.train.launch import connect_ray
    from skillit_ray.tune.drivers import learn_graph, run_short_runs_sequentially

    storage = tempfile.mkdtemp(prefix="skillit-graph-benchmark-")
    config = load_config(
        None,
        ["data.lego.num_variables=3", "data.sequence_length=24", "graph.steps=60", "graph.measure_at_step=0",
         "train.batch_size=16", "data.num_val_per_skill=50", "graph.cpus_per_trial=1", f"run.storage_path={storage}",
         "run.name=graph-benchmark"] + overrides,
    )  # fmt: skip
    sequential = run_short_runs_sequentially(config)
    connect_ray(config)
    slots = max(1, os.cpu_count() or 1)  # one trial slot per core (the local Ray reports more CPUs than cores)

    def tune_layout(name: str, runs_per_trial: int, max_concurrent: int) -> dict:
        graph = dataclasses.replace(config.graph, runs_per_trial=runs_per_trial, max_concurrent_trials=max_concurrent)
        run = dataclasses.replace(config.run, name=f"{config.run.name}-{name}")
        return learn_graph(dataclasses.replace(config, graph=graph, run=run))

    one_slot = tune_layout("one-slot", 0, 1)  # every run in one trial: one start-up, one core
    one_per_trial = tune_layout("one-per-trial", 1, slots)  # every run pays a trial start-up
    batched = tune_layout("batched", 0, slots)  # one trial per slot: start-up paid once per slot
    sequential_s, one_slot_s = sequential["sequential_wall_s"], one_slot["parallel_wall_s"]
    num_runs = batched["num_runs"]
    return {
        "benchmark": "graph",
        "method": config.graph.method,
        "num_runs": num_runs,
        "steps_per_run": config.graph.steps,
        "trial_slots": slots,
        "sequential_wall_s": round(sequential_s, 1),
        "tune_one_slot_wall_s": round(one_slot_s, 1),
        "tune_one_run_per_trial_wall_s": round(one_per_trial["parallel_wall_s"], 1),
        "tune_batched_trials": batched["num_trials"],
        "tune_batched_wall_s": round(batched["parallel_wall_s"], 1),
        # against the sequential driver (torch's threads already use every core) ...
        "speedup_one_run_per_trial": round(sequential_s / one_per_trial["parallel_wall_s"], 2),
        "speedup_batched": round(sequential_s / batched["parallel_wall_s"], 2),
        # ... and against one trial slot: what the slots themselves buy, bounded by runs / ceil(runs / slots)
        "speedup_batched_over_one_slot": round(one_slot_s / batched["parallel_wall_s"], 2),
        "speedup_bound_over_one_slot": round(num_runs / math.ceil(num_runs / slots), 2),
        "cpu_count": os.cpu_count(),
    }


def write_text_skills(root: str, num_skills: int, rows_per_part: int = 30, parts_per_skill: int = 2) -> list[str]:
    """A parquet dataset of `num_skills` synthetic text skills with manifest and local tokenizer."""
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    from skillit_ray.skills.tokenizer import build_tokenizer, save_tokenizer

    directory, words = Path(root), [f"w{index}" for index in range(50)]
    save_tokenizer(build_tokenizer(words), directory / "tokenizer")
    skills = [f"skill_{index:03d}" for index in range(num_skills)]
    for skill_index, skill in enumerate(skills):
        texts = [" ".join(words[(skill_index + row + k) % 50] for k in range(12)) for row in range(rows_per_part)]
        for split, num_parts in (("train", parts_per_skill), ("val", 1)):
            (directory / split / skill).mkdir(parents=True, exist_ok=True)
            for part in range(num_parts):
                pq.write_table(pa.table({"text": texts}), directory / split / skill / f"part-{part:05d}.parquet")
    (directory / "manifest.json").write_text(json.dumps({"source": "parquet", "skills": skills}))
    return skills


def many_skills(num_skills: int, overrides: list[str]) -> dict:
    from skillit_ray.data.sources.registry import resolve_skills
    from skillit_ray.data.streams import resolved_reader
    from skillit_ray.train.launch import connect_ray, run_training

    dataset = tempfile.mkdtemp(prefix="skillit-many-skills-")
    write_text_skills(dataset, num_skills)
    config = load_config(
        None,
        ["data.source=parquet", f"data.parquet.path={dataset}", "data.sequence_length=16", "model.size=tiny",
         "train.steps=30", "train.batch_size=64", "train.eval_every_n_steps=30", "mixture.num_rounds=3",
         "mixture.strategy=stratified", "data.num_val_per_skill=4", "scaling.num_workers=2",
         f"run.storage_path={tempfile.mkdtemp(prefix='skillit-many-skills-runs-')}", "run.name=many-skills"]
        + overrides,
    )  # fmt: skip
    setup = resolve_skills(config)
    reader = resolved_reader(setup.options["reader"], len(setup.train_skills))
    connect_ray(config)
    started = time.perf_counter()
    run_training(config)
    return {
        "benchmark": "many-skills",
        "num_skills": num_skills,
        "reader": reader if setup.options["split"] == "files" else "arrow (positions)",
        "num_workers": config.scaling.num_workers,
        "steps": config.train.steps,
        "batch_size": config.train.batch_size,
        "end_to_end_s": round(time.perf_counter() - started, 1),
        "cpu_count": os.cpu_count(),
    }


def data_path(out: str, report: str) -> dict:
    """The data-path benchmark on the efficiency benchmark's real-text corpus (built under `out` if absent)."""
    from pathlib import Path

    from skillit_ray.benchmarks.data_path import data_path_benchmark, markdown
    from skillit_ray.benchmarks.efficiency_settings import SETTINGS, prepare_data
    from skillit_ray.data.storage import write_file

    overrides = prepare_data(SETTINGS["full"]["text"], Path(out) / "data", "full")
    prepared = next(override.split("=", 1)[1] for override in overrides if override.startswith("data.parquet.path="))
    result = data_path_benchmark(prepared)
    write_file(report, "# Data path: tokens/s delivered to a training worker\n\n"
               "`python -m skillit_ray.benchmarks data-path` (skillit_ray/data_benchmark.py), "
               f"{result['cpu_count']} CPU cores, no GPU.\n\n{markdown(result)}".encode())  # fmt: skip
    return result


def discovery(arguments: argparse.Namespace) -> dict:
    """The discovery benchmark (`discovery_benchmark.py`); writes its JSON and markdown report."""
    from skillit_ray.benchmarks.discovery import SETTINGS, discovery_benchmark, markdown
    from skillit_ray.data.storage import write_file

    settings = [name for name in arguments.settings.split(",") if name] or list(SETTINGS)
    result = discovery_benchmark(arguments.discovery_out, settings, arguments.rows_per_skill, arguments.runs,
                                 arguments.steps, arguments.checkpoints, arguments.overrides)  # fmt: skip
    steps = f" --steps {arguments.steps}" if arguments.steps else ""
    command = (f"python -m skillit_ray.benchmarks discovery --settings {','.join(settings)} --rows-per-skill "
               f"{arguments.rows_per_skill} --runs {arguments.runs}{steps} "
               f"--checkpoints {arguments.checkpoints}")  # fmt: skip
    write_file(arguments.discovery_report, f"# Skill discovery: hidden skills recovered\n\n`{command}` "
               f"(skillit_ray/discovery_benchmark.py), {os.cpu_count()} CPU cores, no GPU.\n\n{markdown(result)}\n"
               f"```json\n{json.dumps(result, indent=2)}\n```\n".encode())  # fmt: skip
    return result


def discovery_downstream(arguments: argparse.Namespace) -> dict:
    """Skill-it on discovered vs true skills vs stratified (`discovery_downstream.py`); appends to the report."""
    from skillit_ray.benchmarks.discovery_downstream import downstream, markdown
    from skillit_ray.data.storage import write_file

    seeds = [int(seed) for seed in arguments.seeds.split(",")]
    result = downstream(arguments.discovery_out, seeds, arguments.rows_per_skill, arguments.runs)
    command = (f"python -m skillit_ray.benchmarks discovery-downstream --rows-per-skill {arguments.rows_per_skill} "
               f"--runs {arguments.runs} --seeds {arguments.seeds}")  # fmt: skip
    write_file(arguments.discovery_report, f"# Skill-it on discovered skills\n\n`{command}` "
               f"(skillit_ray/discovery_downstream.py), {os.cpu_count()} CPU cores, no GPU.\n\n{markdown(result)}\n"
               f"```json\n{json.dumps(result, indent=2)}\n```\n".encode())  # fmt: skip
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m skillit_ray.benchmarks")
    parser.add_argument(
        "which",
        choices=[
            "throughput",
            "graph",
            "many-skills",
            "efficiency",
            "chaos",
            "sampler",
            "data-path",
            "discovery",
            "discovery-downstream",
            "prerequisites",
            "lego-from-base",
        ],
        nargs="?",
        default="throughput",
    )
    parser.add_argument("--skills", type=int, default=200, help="many-skills: number of skills")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default="docs/efficiency", help="efficiency: runs, results.json and plots")
    parser.add_argument("--report", default="docs/RESULTS.md", help="efficiency: the markdown report")
    parser.add_argument("--settings", default="", help="efficiency: comma-separated setting names (default all)")
    parser.add_argument("--seeds", default="0,1,2", help="efficiency: comma-separated seeds")
    parser.add_argument("--strategies", default="", help="efficiency: comma-separated strategies (default all)")
    parser.add_argument("--profile", choices=["full", "quick"], default="full")
    parser.add_argument("--workers", type=int, default=2, help="efficiency: runs at a time (one thread each)")
    parser.add_argument("--faults-per-kind", type=int, default=2, help="chaos: faults of each of the 5 kinds")
    parser.add_argument("--chaos-out", default="", help="chaos: directory for its runs and logs (default: a temp dir)")
    parser.add_argument("--data-path-report", default="docs/DATA_PATH.md", help="data-path: the markdown report")
    parser.add_argument("--discovery-out", default="runs/discovery-benchmark", help="discovery: tables and outputs")
    parser.add_argument("--discovery-report", default="docs/DISCOVERY.md", help="discovery: the markdown report")
    parser.add_argument("--rows-per-skill", type=int, default=400, help="discovery: rows of each hidden skill")
    parser.add_argument("--runs", type=int, default=4, help="discovery: short runs")
    parser.add_argument("--repeats", type=int, default=3, help="throughput: plain / worker / pipeline rounds")
    parser.add_argument("--steps", type=int, default=0, help="discovery: steps of each short run (0: per setting)")
    parser.add_argument("--checkpoints", type=int, default=4, help="discovery: checkpoints scored per run")
    parser.add_argument("--transfer-out", default="runs/transfer", help="prerequisites, lego-from-base: runs.jsonl")
    parser.add_argument("--base", default="runs/lookup-base", help="lego-from-base: a `skillit-ray pretrain` output")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    if arguments.which == "efficiency":
        from skillit_ray.benchmarks.efficiency import efficiency

        settings = [name for name in arguments.settings.split(",") if name] or None
        seeds = [int(seed) for seed in arguments.seeds.split(",")]
        strategies = [name for name in arguments.strategies.split(",") if name] or None
        results = efficiency(
            arguments.out, settings, seeds, arguments.profile, arguments.workers, arguments.report, strategies
        )
        result = {name: {label: round(entry["final_mean"], 4) for label, entry in setting["summary"].items()}
                  for name, setting in results["settings"].items()}  # fmt: skip
    elif arguments.which == "chaos":
        from skillit_ray.benchmarks.chaos import chaos

        result = chaos(arguments.faults_per_kind, arguments.overrides, arguments.chaos_out or None)
    elif arguments.which == "discovery":
        result = discovery(arguments)
    elif arguments.which == "discovery-downstream":
        result = discovery_downstream(arguments)
    elif arguments.which in ("prerequisites", "lego-from-base"):
        from skillit_ray.benchmarks import transfer as transfer_benchmark

        if arguments.which == "prerequisites":
            result = transfer_benchmark.prerequisites(arguments.transfer_out, workers=arguments.workers)
        else:
            result = transfer_benchmark.lego_from_base(
                arguments.base, arguments.transfer_out, workers=arguments.workers
            )
    elif arguments.which == "data-path":
        result = data_path(arguments.out, arguments.data_path_report)
    elif arguments.which == "sampler":
        from skillit_ray.benchmarks.sampler import sampler_benchmark

        result = sampler_benchmark()
    elif arguments.which == "throughput":
        from skillit_ray.benchmarks.throughput import throughput

        result = throughput(arguments.overrides, arguments.repeats)
    elif arguments.which == "graph":
        result = graph_speedup(arguments.overrides)
    else:
        result = many_skills(arguments.skills, arguments.overrides)
    print(json.dumps(result, indent=2))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
