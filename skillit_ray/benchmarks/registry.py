"""The benchmark registry and its command line: `python -m skillit_ray.benchmarks NAME [args]`.

Role in the flow: the last stage, beside the CLI; nothing of the runtime imports it. Every module of
this package that defines `BENCHMARKS` (one or more `Benchmark`) is registered, so a new benchmark is one
module (and its test). Each benchmark prints one JSON object: performance claims live here, side by
side with their baseline in the same run, never in timed tests. `--help` lists them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import skillit_ray.benchmarks as benchmarks_package


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: its name on the command line, what it measures, its flags and how it runs."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], dict[str, Any]]
    """Runs it with the parsed flags; returns the JSON-ready figures."""
    add_arguments: Callable[[argparse.ArgumentParser], None] = field(default=lambda parser: None)


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """`--set key=value`, repeatable: config overrides of the runs a benchmark starts."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")


def benchmarks() -> dict[str, Benchmark]:
    """Every registered benchmark by name, from the `BENCHMARKS` of this package's modules."""
    found: dict[str, Benchmark] = {}
    for module_info in sorted(pkgutil.iter_modules(benchmarks_package.__path__), key=lambda item: item.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{benchmarks_package.__name__}.{module_info.name}")
        for benchmark in getattr(module, "BENCHMARKS", ()):
            if benchmark.name in found:
                raise TypeError(f"benchmark {benchmark.name!r} is registered twice")
            found[benchmark.name] = benchmark
    return dict(sorted(found.items()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m skillit_ray.benchmarks", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="benchmark", required=True, metavar="NAME")
    for name, benchmark in benchmarks().items():
        benchmark.add_arguments(commands.add_parser(name, help=benchmark.help, description=benchmark.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    result = benchmarks()[arguments.benchmark].run(arguments)
    print(json.dumps(result, indent=2, default=str))
    sys.stdout.flush()
    return 0
