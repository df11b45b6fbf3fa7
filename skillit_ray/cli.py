"""`skillit-ray`: the command line. One subcommand per stage; every run value comes from YAML + `--set`.

    skillit-ray prepare lego|addition|staircase|lookup --out DIR   skill-partitioned parquet shards + manifest
    skillit-ray prepare table --input TABLE --skill-column C --text-column T --out DIR
                        [--val-rows N | --val-fraction F] [--tokenizer-vocab-size N | --tokenizer PATH]
    skillit-ray prepare tokens --input DIR --out STORE [--sequence-length N] [--pack | --no-pack]
                                                   a prepared directory tokenized once (Ray Data) into a token store
    skillit-ray train    --config FILE [--set k=v ...] one training run (Ray Train + sampler actor)
    skillit-ray graph    --config FILE                 skills graph from parallel short runs (Ray Tune)
    skillit-ray tune     --config FILE                 eta / rounds / window search (Ray Tune)
    skillit-ray pipeline --config FILE                 graph -> tune -> train
    skillit-ray corpus   --out FILE.parquet            a real-text table (text, source) from installed packages
    skillit-ray discover --input TABLE --text-column T --num-skills K --out DIR
                                                       skills for an unlabeled table from loss trajectories
    skillit-ray compare  RUN_DIR [RUN_DIR ...]         per-skill table of finished runs and a comparison plot
                                                       (and their evaluate results when present)
    skillit-ray evaluate RUN_DIR [--tasks T[,T...]] [--skill-tasks] [--include-path DIR] [--limit N]
                         [--batch-size B|auto] [--device cpu|cuda] [--bootstrap-iters N]
                                                       the run's exported model (RUN_DIR/model) scored with
                                                       lm-evaluation-harness: lm-eval's tasks, task YAMLs under
                                                       --include-path, --skill-tasks the run's evaluation skills
                                                       (validation items); results in RUN_DIR/evaluation/ and
                                                       the run's trackers (pip install 'skillit-ray[eval]')
    skillit-ray demo     --out DIR                     staircase: learned graph, Skill-it vs stratified vs random, CPU
    skillit-ray keys                                   every config key: type, default, meaning
    skillit-ray memory   --config FILE [--cluster C]   GPU memory per worker for ddp and fsdp (the preflight)

A quiet console by default: our progress lines and results, Ray's own lines from WARNING up (the rest
stays in Ray's log files); `--verbose` shows everything.

Bad configs and bad data fail here, before Ray starts, with exit status 2 and the key, file and fix.
"""

from __future__ import annotations

import argparse
import json
import sys

from skillit_ray.config.job import load_config
from skillit_ray.train.console import configure_console


def _add_config_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--config", required=required, help="YAML run config (see jobs/configs/)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override, e.g. train.steps=100",
    )
    parser.add_argument("--cluster", help="cluster YAML (clusters/...) to check the job against before it starts")
    _add_verbose_argument(parser)


def _add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verbose", action="store_true", help="show Ray's and the libraries' INFO lines too (default: warnings only)"
    )


def _add_prepare_parser(commands) -> None:
    prepare = commands.add_parser("prepare", help="write skill-partitioned parquet shards (generators or a table)")
    prepare.add_argument(
        "source", help="a generator family (lego, addition, staircase, lookup, ...), table, or tokens (a token store)"
    )
    prepare.add_argument("--out", required=True, help="output directory or store URI (empty unless --overwrite)")
    prepare.add_argument("--overwrite", action="store_true", help="clear a non-empty --out first")
    prepare.add_argument("--rows-per-skill", type=int, default=20000, help="generators: training rows per skill")
    prepare.add_argument("--rows-per-part", type=int, default=2000, help="rows per parquet part file")
    table = prepare.add_argument_group("table", "prepare table: a table with a skill column")
    table.add_argument("--input", help="parquet file/dir/glob, JSONL, CSV, a datasets directory, or hf:NAME")
    table.add_argument("--skill-column", default="skill")
    table.add_argument("--text-column", default="text")
    table.add_argument("--prompt-column", default="", help="with --answer-column: prompt/answer rows")
    table.add_argument("--answer-column", default="")
    table.add_argument("--task-column", default="", help="write each skill's rows round-robin over its tasks")
    table.add_argument("--val-rows", type=int, default=0, help="rows held out per skill for validation")
    table.add_argument("--val-fraction", type=float, default=0.0, help="or this fraction of each skill's rows")
    table.add_argument("--seed", type=int, default=0, help="seeds the validation split and the task order")
    table.add_argument("--min-skill-rows", type=int, default=0, help="skills with fewer rows are dropped or merged")
    table.add_argument("--tiny-skills", choices=["drop", "merge"], default="drop", help="merge: into skill 'other'")
    table.add_argument(
        "--tokenizer",
        default="",
        help="a tokenizer directory or tokenizer.json to use (prepare tokens: also a hub id, ORG/NAME)",
    )
    table.add_argument("--tokenizer-vocab-size", type=int, default=0, help="or train a byte-level BPE of this size")
    tokens = prepare.add_argument_group("tokens", "prepare tokens: --input is a prepared directory")
    tokens.add_argument("--sequence-length", type=int, default=0, help="tokens per row (0: from the data)")
    tokens.add_argument("--pack", action=argparse.BooleanOptionalAction, default=None,
                        help="join training documents with EOS into full rows (default: plain text only)")  # fmt: skip
    tokens.add_argument("--workers", type=int, default=0, help="tokenizing actors (0: one per cluster CPU)")
    _add_config_arguments(prepare, required=False)


def _add_discover_parser(commands) -> None:
    discover = commands.add_parser("discover", help="skills for an unlabeled table from per-sample loss trajectories")
    discover.add_argument("--input", required=True, help="parquet file/dir/glob, JSONL, CSV or a datasets directory")
    discover.add_argument("--text-column", default="text")
    discover.add_argument("--num-skills", type=int, required=True, help="clusters to find (K >= 2)")
    discover.add_argument("--out", required=True, help="output directory (must be empty unless --overwrite)")
    discover.add_argument("--true-skill-column", default="", help="evaluation only: score the clusters against it")
    discover.add_argument("--runs", type=int, default=4, help="short training runs (seeds seed, seed + 1, ...)")
    discover.add_argument("--steps", type=int, default=200, help="steps of each short run")
    discover.add_argument("--checkpoints", type=int, default=4, help="evenly spaced checkpoints scored per run")
    discover.add_argument("--fit-rows", type=int, default=20000, help="rows k-means is fitted on (0: all)")
    discover.add_argument("--normalization", default="centered", help="centered, relative or raw loss trajectories")
    discover.add_argument("--seed", type=int, default=0)
    discover.add_argument("--tokenizer", default="", help="a tokenizer directory or tokenizer.json to use")
    discover.add_argument("--tokenizer-vocab-size", type=int, default=0, help="or train a byte-level BPE of this size")
    discover.add_argument("--scoring-workers", type=int, default=0, help="Ray Data scoring actors (0: one per CPU)")
    discover.add_argument("--overwrite", action="store_true", help="clear a non-empty --out first")
    discover.add_argument(
        "--recluster", action="store_true", help="cluster the trajectories in --out again (new K, normalization)"
    )
    _add_config_arguments(discover, required=False)


def _add_evaluate_parser(commands) -> None:
    evaluate = commands.add_parser("evaluate", help="score a run's exported model with lm-evaluation-harness")
    evaluate.add_argument("run", help="run directory (local or s3:// / gs://) with model/ from train.export_model")
    evaluate.add_argument("--tasks", default="", help="comma-separated lm-eval tasks, e.g. hellaswag,my_task")
    evaluate.add_argument("--skill-tasks", action="store_true",
                          help="also score each evaluation skill of the run on its validation items")  # fmt: skip
    evaluate.add_argument("--include-path", dest="include_paths", action="append", default=[], metavar="DIR",
                          help="a directory of task YAMLs (repeatable)")  # fmt: skip
    evaluate.add_argument("--limit", type=int, default=None, help="at most N documents per task (default: all)")
    evaluate.add_argument("--batch-size", default="8", help="documents per forward pass, or auto")
    evaluate.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available")
    evaluate.add_argument("--bootstrap-iters", type=int, default=1000,
                          help="resamples for the standard error of perplexity-like metrics (0: none)")  # fmt: skip
    _add_verbose_argument(evaluate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skillit-ray", description="Skill-it! online data mixing on Ray.")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_prepare_parser(commands)
    for name, help_text in (
        ("train", "train with the online mixture (Ray Train)"),
        ("graph", "learn the skills graph with parallel short runs (Ray Tune)"),
        ("tune", "search eta / rounds / window (Ray Tune)"),
        ("pipeline", "graph -> tune -> train"),
    ):
        _add_config_arguments(commands.add_parser(name, help=help_text))
    corpus = commands.add_parser("corpus", help="a real-text table (text, source) from the installed packages' text")
    corpus.add_argument("--out", required=True, help="parquet file to write (local or s3:// / gs://)")
    corpus.add_argument("--documents-per-source", type=int, default=1650)
    corpus.add_argument("--seed", type=int, default=0)
    _add_discover_parser(commands)
    pretrain = commands.add_parser("pretrain", help="train a base model once; save it for model.pretrained_path")
    pretrain.add_argument("--out", required=True, help="directory for the saved model, tokenizer and pretrain.json")
    pretrain.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    _add_config_arguments(pretrain)
    compare = commands.add_parser("compare", help="per-skill table of finished runs and a comparison plot")
    compare.add_argument("runs", nargs="+", help="run directories (local or s3:// / gs://)")
    compare.add_argument("--plot", help="comparison PNG (default: comparison.png beside the first run)")
    _add_evaluate_parser(commands)
    demo = commands.add_parser("demo", help="staircase on a CPU: learn the graph, Skill-it vs stratified vs random")
    demo.add_argument("--out", default="runs/demo")
    demo.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    _add_verbose_argument(demo)
    commands.add_parser("keys", help="list every config key with its type, default and meaning")
    memory = commands.add_parser("memory", help="the memory preflight: GPU memory per worker for ddp and fsdp")
    _add_config_arguments(memory)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    configure_console(getattr(arguments, "verbose", False))  # Ray's INFO lines only with --verbose
    try:
        COMMANDS[arguments.command](arguments)
        return 0
    except ValueError as error:
        print(f"skillit-ray {arguments.command}: error: {error}", file=sys.stderr)
        return 2


def _checked_config(arguments: argparse.Namespace):
    """The job's config, checked before Ray starts: keys, values, options, files, the cluster shape."""
    from skillit_ray.train.preflight import check_job

    config = load_config(arguments.config, arguments.overrides)
    for warning in check_job(config, arguments.cluster):
        print(f"warning: {warning}", file=sys.stderr)
    return config


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, default=str))


def _memory(arguments: argparse.Namespace) -> None:
    from skillit_ray.train.resolve import memory_report

    print(memory_report(_checked_config(arguments)))


def _keys(arguments: argparse.Namespace) -> None:
    from skillit_ray.train.preflight import describe_every_key

    print(describe_every_key())


def _demo(arguments: argparse.Namespace) -> None:
    from skillit_ray.tune.demo import run_demo

    run_demo(arguments.out, arguments.overrides)


def _compare(arguments: argparse.Namespace) -> None:
    from skillit_ray.train.report import compare_runs

    print(compare_runs(arguments.runs, arguments.plot))


def _evaluate(arguments: argparse.Namespace) -> None:
    from skillit_ray.train.downstream import EvaluateOptions, evaluate_run

    batch_size = arguments.batch_size if arguments.batch_size == "auto" else _positive_integer(arguments.batch_size)
    tasks = tuple(task.strip() for task in arguments.tasks.split(",") if task.strip())
    options = EvaluateOptions(
        arguments.run, tasks, arguments.skill_tasks, tuple(arguments.include_paths), arguments.limit, batch_size,
        arguments.device or "", arguments.bootstrap_iters,
    )  # fmt: skip
    result = evaluate_run(options)
    _print_json(result["summary"])
    trackers = f"; logged to {', '.join(result['trackers'])}" if result["trackers"] else ""
    print(f"wrote {', '.join(result['files'])}{trackers}")


def _positive_integer(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"--batch-size {text!r} must be a positive integer or auto")
    return int(text)


def _corpus(arguments: argparse.Namespace) -> None:
    from skillit_ray.data.prepare.corpus import build_corpus_table

    counts = build_corpus_table(arguments.out, arguments.documents_per_source, seed=arguments.seed)
    print(f"wrote {arguments.out}: documents per source {counts}")


def _discover(arguments: argparse.Namespace) -> None:
    from skillit_ray.discovery.discover import run_discover

    report = run_discover(arguments)
    print(json.dumps(report["methods"], indent=2))
    print(f"wrote {arguments.out}/discovered.parquet; prepare it with: skillit-ray prepare table "
          f"--input {arguments.out}/discovered.parquet --skill-column skill --text-column text ...")  # fmt: skip


def _prepare(arguments: argparse.Namespace) -> None:
    from skillit_ray.data.prepare.table import TableOptions, prepare_table

    if arguments.source == "tokens":
        _prepare_tokens(arguments)
        return
    config = load_config(arguments.config, arguments.overrides)
    if arguments.source != "table":
        from skillit_ray.data.prepare.generators import prepare_synthetic

        path = prepare_synthetic(
            config, arguments.source, arguments.out, arguments.rows_per_skill, arguments.rows_per_part,
            overwrite=arguments.overwrite,
        )  # fmt: skip
        print(f"wrote {path}")
        return
    options = TableOptions.from_arguments(arguments, config.data.max_unknown_token_rate)
    path = prepare_table(options)
    print(f"wrote {path}; train with --set data.source=parquet --set data.parquet.path={arguments.out}")


def _prepare_tokens(arguments: argparse.Namespace) -> None:
    from skillit_ray.data.prepare.tokens import TokenStoreOptions, summary
    from skillit_ray.data.tokenize_job import run_prepare_tokens

    if not arguments.input:
        raise ValueError("prepare tokens needs --input DIR (a directory written by `skillit-ray prepare ...`)")
    options = TokenStoreOptions(
        arguments.input, arguments.out, arguments.sequence_length, arguments.pack, arguments.tokenizer,
        arguments.workers, arguments.overwrite,
    )  # fmt: skip
    result = run_prepare_tokens(options)
    _print_json({**summary(result["manifest"]), "seconds": round(result["seconds"], 2), "workers": result["workers"]})
    print(f"wrote {arguments.out}; train with --set data.source=tokens --set data.tokens.path={arguments.out}")


def _pretrain(arguments: argparse.Namespace) -> None:
    from skillit_ray.train.pretrain import pretrain

    _print_json(pretrain(_checked_config(arguments), arguments.out, arguments.overwrite))
    print(f"saved {arguments.out}; continue from it with --set model.pretrained_path={arguments.out}")


def _train(arguments: argparse.Namespace) -> None:
    from skillit_ray.train.launch import run_training

    _print_json(run_training(_checked_config(arguments)))


def _graph(arguments: argparse.Namespace) -> None:
    from skillit_ray.tune.graph_runs import learn_graph

    _print_json(learn_graph(_checked_config(arguments)))


def _tune(arguments: argparse.Namespace) -> None:
    from skillit_ray.tune.search import tune_hyperparameters

    _print_json(tune_hyperparameters(_checked_config(arguments)))


def _pipeline(arguments: argparse.Namespace) -> None:
    from skillit_ray.tune.pipeline import run_pipeline

    _print_json(run_pipeline(_checked_config(arguments)))


COMMANDS = {
    "prepare": _prepare, "train": _train, "graph": _graph, "tune": _tune, "pipeline": _pipeline, "corpus": _corpus,
    "discover": _discover, "pretrain": _pretrain, "compare": _compare, "demo": _demo, "keys": _keys,
    "memory": _memory, "evaluate": _evaluate,
}  # fmt: skip
"""Subcommand -> its handler: each parses nothing more and calls one function of its stage."""


if __name__ == "__main__":
    raise SystemExit(main())
