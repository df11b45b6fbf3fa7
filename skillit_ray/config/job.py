"""A job's whole configuration: every section, loaded from YAML plus `--set a.b=c` and checked.

Role in the flow: the first thing every entry point calls. `load_config` reads the YAML, applies the
overrides, builds `JobConfig` (unknown keys are errors that list the valid keys, or name the new key
of one that moved), runs every section's `validate()` and the checks that span sections, and makes
relative local paths absolute. All of it runs before any Ray work starts, so a typo costs seconds.

What this does not check: the options that a source or a strategy owns (`data.<source>.*`,
`mixture.<family>.*`) and the names of sources and strategies. Their stage checks them, still before
Ray starts, when the run is resolved (`train/resolve.py`); every command resolves first.

No Ray import: the driver, the Train workers, Tune trials and tests all load configs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skillit_ray.config.data import DataConfig
from skillit_ray.config.graph import GraphConfig
from skillit_ray.config.loading import (
    apply_override,
    as_mapping,
    build_dataclass,
    describe_fields,
    is_path_key,
    read_yaml_mapping,
    require,
)
from skillit_ray.config.mixture import MixtureConfig
from skillit_ray.config.model import ModelConfig
from skillit_ray.config.run import RunConfig, ScalingConfig
from skillit_ray.config.tracking import TrackingConfig, absolute_mlflow_uri
from skillit_ray.config.train import TrainConfig
from skillit_ray.config.tune import TuneConfig


@dataclass
class JobConfig:
    """Everything one `skillit-ray` command needs."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    mixture: MixtureConfig = field(default_factory=MixtureConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    run: RunConfig = field(default_factory=RunConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def validate(self) -> JobConfig:
        """Every section's own checks, then those spanning sections; raises ValueError naming key and fix."""
        sections = (self.data, self.model, self.mixture, self.train, self.scaling, self.run, self.graph, self.tune,
                    self.tracking)  # fmt: skip
        for section in sections:
            section.validate()
        self.tracking.validate_storage(self.run.storage_path)
        mixture, train = self.mixture, self.train
        if mixture.setting == "finetuning":
            require(
                bool(mixture.target_skills) or bool(self.data.eval_skills),
                "mixture.setting=finetuning needs mixture.target_skills (the skill(s) to learn)",
            )
        if mixture.setting == "out_of_domain":
            require(
                bool(self.data.eval_skills),
                "mixture.setting=out_of_domain needs data.eval_skills (evaluation skills separate from training)",
            )
        require(
            mixture.num_rounds <= train.steps,
            f"mixture.num_rounds={mixture.num_rounds} exceeds train.steps={train.steps}; a round needs >= 1 step",
        )
        require(
            train.batch_size >= self.scaling.num_workers,
            f"train.batch_size={train.batch_size} is smaller than scaling.num_workers={self.scaling.num_workers}; "
            "every worker needs at least one sample per step",
        )
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON friendly) that `config_from_dict` reads back."""
        return as_mapping(self)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> JobConfig:
    """Load a YAML file (optional) and apply `a.b=c` overrides, then validate.

    Args:
        path: YAML file whose top-level keys are sections of JobConfig; None for defaults.
        overrides: strings "section.key=value"; the value is parsed as YAML ("1e-3", "[1, 2]").

    Raises:
        ValueError: missing or invalid file (file and line named), unknown section or key (valid keys
            listed), wrong type, malformed override, or an invalid value.
    """
    raw = read_yaml_mapping(path) if path is not None else {}
    for override in overrides or []:
        apply_override(raw, override)
    return with_absolute_local_paths(config_from_dict(raw).validate())


def config_from_dict(raw: dict[str, Any]) -> JobConfig:
    """Build a JobConfig from a nested dict, rejecting unknown keys and wrong types."""
    return build_dataclass(JobConfig, raw)


INPUT_PATH_KEYS = (
    ("data", "tokenizer_path"),
    ("mixture", "graph_path"),
    ("model", "pretrained_path"),
)
"""Section keys naming files or directories a run reads; the configured source's path options
(`data.<source>.path`, ...) are inputs too (`input_paths`)."""
OUTPUT_PATH_KEYS = (("run", "storage_path"), ("graph", "output_path"))
"""Section keys naming where a run writes."""


def is_local_path(value: str) -> bool:
    """A non-empty path on this machine's disk: not a URI (s3://, gs://, file://) or an `hf:` dataset name."""
    return bool(value) and "://" not in value and not value.startswith("hf:")


def _option_paths(config: JobConfig, only_configured: bool) -> list[tuple[str, dict[str, Any], str]]:
    """(dotted prefix, options mapping, key) of every path option of the option sections."""
    found = []
    for section_name in ("data", "mixture"):
        section = getattr(config, section_name)
        for name, options in section.options.items():
            if only_configured and section_name == "data" and name != config.data.source:
                continue
            found.extend((f"{section_name}.{name}", options, key) for key in options if is_path_key(key))
    return found


def input_paths(config: JobConfig) -> list[tuple[str, str]]:
    """("section.key", value) of every local file or directory the run reads."""
    values = [(f"{section}.{key}", getattr(getattr(config, section), key)) for section, key in INPUT_PATH_KEYS]
    values += [(f"{prefix}.{key}", options[key]) for prefix, options, key in _option_paths(config, True)]
    return [(name, value) for name, value in values if isinstance(value, str) and is_local_path(value)]


def with_absolute_local_paths(config: JobConfig) -> JobConfig:
    """Relative local paths resolved against the working directory where the config is loaded (the
    driver's), so Ray Train workers and Tune trials, which run elsewhere, find the same files. URIs
    (s3://, gs://, file://) and `hf:` dataset names are left as they are."""

    def absolute(value: Any) -> Any:
        return os.path.abspath(os.path.expanduser(value)) if isinstance(value, str) and is_local_path(value) else value

    for section, key in (*INPUT_PATH_KEYS, *OUTPUT_PATH_KEYS, ("model", "cache_dir")):
        setattr(getattr(config, section), key, absolute(getattr(getattr(config, section), key)))
    if os.path.exists(os.path.expanduser(config.model.name_or_path)):  # a directory, not a hub id (ORG/NAME)
        config.model.name_or_path = absolute(config.model.name_or_path)
    for _, options, key in _option_paths(config, False):
        options[key] = absolute(options[key])
    config.tracking.mlflow_uri = absolute_mlflow_uri(config.tracking.mlflow_uri)
    return config


def describe_keys() -> list[str]:
    """Every dotted key of the sections (option sections' keys come from their owners)."""
    return [key for key, *_ in describe_fields(JobConfig)]


def describe_config_keys(cls: type = JobConfig, prefix: str = "") -> str:
    """Every dotted key of a dataclass tree with its type, default and docstring, for `skillit-ray keys`."""
    lines = []
    for key, type_name, default, docstring in describe_fields(cls, prefix):
        lines.append(f"{key} ({type_name}, default {default!r})")
        if docstring:
            lines.append(f"    {docstring}")
    return "\n".join(lines)
