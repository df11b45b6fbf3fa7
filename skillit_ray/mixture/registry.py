"""The strategy registry: every `mixture.strategy` by name, its options, and the run's strategy built from the config.

Role in the flow: config -> **registry** -> sampler (driver, Train workers, Tune trials). The registry
finds the strategies itself: every `MixtureStrategy` subclass with a `name` in a module of
`skillit_ray/mixture/strategies/`, so a new strategy is one module there (and its test), and nothing
else changes. Before Ray starts, `check_mixture(config)` refuses an unknown strategy (listing the
known ones), options of a strategy family that do not exist or have the wrong type (listing the valid
ones), and a strategy that needs proportions without them; `strategy_from_config` then reads the run's
skills graph (`mixture.graph_path` or `mixture.graph`) and builds the strategy. Pure: no Ray.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from skillit_ray.config.job import JobConfig
from skillit_ray.config.loading import build_dataclass
from skillit_ray.config.mixture import window_reduction
from skillit_ray.config.plugins import chosen, registry
from skillit_ray.graph.files import load_graph, load_graph_array
from skillit_ray.mixture import strategies as strategies_package
from skillit_ray.mixture.settings import full_graph_columns
from skillit_ray.mixture.strategy import MixtureStrategy, StrategyInputs
from skillit_ray.mixture.update import as_graph, paper_binary_graph


@cache
def strategies() -> dict[str, type[MixtureStrategy]]:
    """Every strategy by name: the named `MixtureStrategy` subclasses of the modules in `strategies/`."""
    return registry(strategies_package, MixtureStrategy, lambda cls: [cls.name] if cls.name else [])


def strategy_class(name: str) -> type[MixtureStrategy]:
    """The strategy class of `mixture.strategy`; the error lists every strategy."""
    return chosen(strategies(), "mixture.strategy", name)


def option_sections() -> dict[str, type]:
    """`mixture.<section>` -> the options dataclass read there (one per strategy family)."""
    return {cls.options_section: cls.Options for cls in strategies().values() if cls.options_section}


def strategy_options(config: JobConfig, name: str | None = None) -> Any:
    """The typed options of a strategy (default: the configured one), checking every options section given."""
    sections = option_sections()
    for section, raw in config.mixture.options.items():
        if section not in sections:
            raise ValueError(
                f"mixture.{section} is not a strategy's options section; valid sections: {', '.join(sections)} "
                "(or a key of mixture: `skillit-ray keys` lists them)"
            )
        build_dataclass(sections[section], raw, f"mixture.{section}.")
    cls = strategy_class(name or config.mixture.strategy)
    return build_dataclass(
        cls.Options, config.mixture.options.get(cls.options_section, {}), f"mixture.{cls.options_section}."
    )


def check_mixture(config: JobConfig) -> None:
    """Everything about the strategy that needs no data: its name, its options, proportions it needs."""
    cls = strategy_class(config.mixture.strategy)
    strategy_options(config)
    if cls.needs_proportions and not config.mixture.proportions:
        raise ValueError(f"mixture.strategy={cls.name} needs mixture.proportions, e.g. [1, 1, 1, 3, 5] for LEGO")


def build_strategy(name: str, *, graph: np.ndarray | None, options: dict[str, Any] | None = None, **inputs: Any):
    """Build a registered strategy from resolved values (`StrategyInputs` fields as keywords; `loss_reduction`
    is resolved by setting) and the raw mapping of its options. A missing graph means the identity, which
    needs a square setting."""
    cls = strategy_class(name)
    num_train_skills, num_eval_skills = inputs["num_train_skills"], inputs["num_eval_skills"]
    if num_train_skills < 1:
        raise ValueError(f"there must be at least one training skill, got k={num_train_skills}")
    if graph is None and cls.uses_graph:
        if num_train_skills != num_eval_skills:
            raise ValueError(
                f"no skills graph given for {num_train_skills} training x {num_eval_skills} evaluation skills; "
                "the identity default needs a square setting: set mixture.graph or mixture.graph_path"
            )
        if cls.needs_graph:
            raise ValueError(
                f"mixture.strategy={name} needs a skills graph: learn one with `skillit-ray graph --config ...` "
                "and pass mixture.graph_path=<storage>/<run>/graph/graph.json, give mixture.graph, or ask for the "
                "identity graph explicitly with mixture.strategy=no_graph"
            )
        graph = np.eye(num_train_skills)
    if graph is not None:
        graph = as_graph(graph, num_train_skills, num_eval_skills)
    reduction = window_reduction(inputs.get("setting", "pretraining"), inputs.pop("loss_reduction", "auto"))
    inputs = {key: tuple(value) if key in ("proportions", "prior") else value for key, value in inputs.items()}
    typed = build_dataclass(cls.Options, options or {}, f"mixture.{cls.options_section}.")
    return cls.build(StrategyInputs(graph=graph, window_reduction=reduction, **inputs), typed)


def resolve_graph(config: JobConfig, train_skills: list[str], eval_skills: list[str]) -> np.ndarray | None:
    """The run's k x m skills graph from `mixture.graph_path` or `mixture.graph`, or None (identity)."""
    mixture = config.mixture
    num_train, num_eval = len(train_skills), len(eval_skills)
    if mixture.graph_path:
        columns = eval_skills
        if mixture.setting == "finetuning" and mixture.graph_path.endswith(".npy"):
            square = load_graph_array(mixture.graph_path).shape == (num_train, num_train)
            columns = train_skills if square else columns  # a full k x k graph: take targets below
        graph = load_graph(mixture.graph_path, train_skills, columns)
    elif mixture.graph:
        graph = np.asarray(mixture.graph, dtype=np.float64)
    else:
        return None
    if mixture.setting == "finetuning" and graph.shape == (num_train, num_train) and num_eval != num_train:
        graph = full_graph_columns(graph, train_skills, eval_skills)
    if graph.shape != (num_train, num_eval):
        source = mixture.graph_path or "mixture.graph"
        raise ValueError(
            f"skills graph {source} has shape {graph.shape} but this run has {num_train} training skills "
            f"{train_skills} (rows) and {num_eval} evaluation skills {eval_skills} (columns)"
        )
    if mixture.graph_preprocessing == "paper_binary":
        graph = paper_binary_graph(graph)
    return graph


def strategy_from_config(config: JobConfig, train_skills: list[str], eval_skills: list[str]) -> MixtureStrategy:
    """The configured strategy for these skills: check it, resolve the graph, then build from the registry."""
    check_mixture(config)
    mixture = config.mixture
    return build_strategy(
        mixture.strategy,
        graph=resolve_graph(config, train_skills, eval_skills),
        options=mixture.options.get(strategy_class(mixture.strategy).options_section, {}),
        setting=mixture.setting,
        num_train_skills=len(train_skills),
        num_eval_skills=len(eval_skills),
        eta=mixture.eta,
        window=mixture.window,
        loss_reduction=mixture.loss_reduction,
        num_rounds=mixture.num_rounds,
        total_steps=config.train.steps,
        batch_size=config.train.batch_size,
        proportions=mixture.proportions,
        prior=mixture.prior,
        uniform_mix=mixture.uniform_mix,
        seed=config.train.seed,
    )
