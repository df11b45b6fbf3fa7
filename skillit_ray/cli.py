"""`skillit-ray`: the command line. One subcommand per stage; every value comes from YAML + `--set`.

    skillit-ray prepare lego|addition --out DIR        skill-partitioned parquet shards + manifest
    skillit-ray train    --config FILE [--set k=v ...] one training run (Ray Train + sampler actor)
    skillit-ray graph    --config FILE                 skills graph from parallel short runs (Ray Tune)
    skillit-ray tune     --config FILE                 eta / rounds / window search (Ray Tune)
    skillit-ray pipeline --config FILE                 graph -> tune -> train
    skillit-ray demo     --out DIR                     LEGO: Skill-it (2 graphs) vs stratified vs random, CPU
    skillit-ray keys                                   every config key: type, default, meaning

Bad configs fail here, before Ray starts.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from skillit_ray.config import describe_keys_with_docs, load_config


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skillit-ray", description="Skill-it! online data mixing on Ray.")
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser("prepare", help="write skill-partitioned parquet shards from a generator")
    prepare.add_argument("source", choices=["lego", "addition"])
    prepare.add_argument("--out", required=True, help="output directory")
    prepare.add_argument("--rows-per-skill", type=int, default=20000)
    prepare.add_argument("--rows-per-part", type=int, default=2000)
    _add_config_arguments(prepare, required=False)
    train = commands.add_parser("train", help="train with the online mixture (Ray Train)")
    _add_config_arguments(train)
    graph = commands.add_parser("graph", help="learn the skills graph with parallel short runs (Ray Tune)")
    _add_config_arguments(graph)
    tune = commands.add_parser("tune", help="search eta / rounds / window (Ray Tune)")
    _add_config_arguments(tune)
    pipeline = commands.add_parser("pipeline", help="graph -> tune -> train")
    _add_config_arguments(pipeline)
    demo = commands.add_parser("demo", help="LEGO on a CPU: Skill-it (paper and chain graphs) vs stratified vs random")
    demo.add_argument("--out", default="runs/demo")
    demo.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    commands.add_parser("keys", help="list every config key with its type, default and meaning")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return _dispatch(arguments)
    except ValueError as error:
        print(f"skillit-ray {arguments.command}: error: {error}", file=sys.stderr)
        return 2


def _dispatch(arguments: argparse.Namespace) -> int:
    if arguments.command == "keys":
        print(describe_keys_with_docs())
        return 0
    if arguments.command == "demo":
        from skillit_ray.demo import run_demo

        run_demo(arguments.out, arguments.overrides)
        return 0
    config = load_config(arguments.config, arguments.overrides)
    if arguments.command != "prepare":
        from skillit_ray.preflight import check_job

        for warning in check_job(
            config, getattr(arguments, "cluster", None)
        ):  # missing files etc. raise here, before Ray starts
            print(f"warning: {warning}", file=sys.stderr)
    if arguments.command == "prepare":
        from skillit_ray.prepare import prepare_synthetic

        path = prepare_synthetic(
            config, arguments.source, arguments.out, arguments.rows_per_skill, arguments.rows_per_part
        )
        print(f"wrote {path}")
        return 0
    if arguments.command == "train":
        from skillit_ray.train import run_training

        summary = run_training(config)
        print(json.dumps(summary, indent=2))
        return 0
    from skillit_ray import tune

    if arguments.command == "graph":
        result = tune.learn_graph(config)
    elif arguments.command == "tune":
        result = tune.tune_hyperparameters(config)
    else:
        result = tune.run_pipeline(config)
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
