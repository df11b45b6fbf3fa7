"""The source registry: every `data.source` by name, its options, and the run's skills resolved against it.

Role in the flow: config -> **registry** -> source -> streams/assembly. The registry finds the sources
itself: every `SkillSource` subclass with `names` in a module of `skillit_ray/data/sources/` (the
generator source serves every skill family of `skills/`), so a new source is one module there (and its
test). `resolve_skills(config)` runs on the driver before Ray starts: it types and checks the source's
options (`data.<source>.*`, and every other options section given, so a typo never waits), asks the
source which skills exist, checks the skills the config names against them, settles the evaluation
skills of the setting, checks the data on disk, and returns a `SkillSetup` (plain data, sent to every
worker). Workers turn the setup back into its source with `source_for(setup)`.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from skillit_ray.config.job import JobConfig
from skillit_ray.config.loading import build_dataclass
from skillit_ray.config.plugins import chosen, registry
from skillit_ray.data import sources as sources_package
from skillit_ray.data.source import SkillSetup, SkillSource, ValidationSet, options_as_dict


@cache
def sources() -> dict[str, type[SkillSource]]:
    """Every `data.source` value -> the class that serves it, from the modules of `sources/`."""
    return registry(sources_package, SkillSource, lambda cls: cls.names)


def source_class(name: str) -> type[SkillSource]:
    """The class of a `data.source` value; the error lists every source."""
    return chosen(sources(), "data.source", name)


def source_options(config: JobConfig, name: str | None = None) -> Any:
    """The typed options of a source (default: the configured one), after checking every options section."""
    known = sources()
    for section, raw in config.data.options.items():
        if section not in known:
            raise ValueError(
                f"data.{section} is not a source's options section; valid sections: {', '.join(known)} "
                "(or a key of data: `skillit-ray keys` lists them)"
            )
        build_dataclass(known[section].options_class(section), raw, f"data.{section}.")
    name = name or config.data.source
    cls = source_class(name)
    options = build_dataclass(cls.options_class(name), config.data.source_options(name), f"data.{name}.")
    cls.check_options(options, config)
    return options


def check_data(config: JobConfig) -> None:
    """Everything about the source that needs no data read: its name and its options."""
    source_options(config)


def source_for(setup: SkillSetup) -> SkillSource:
    return source_class(setup.kind)(setup)


def resolve_eval_skills(
    setting: str, train_skills: list[str], eval_skills: list[str], target_skills: list[str]
) -> list[str]:
    """Evaluation skills (graph columns) of a setting.

    pretraining: the training skills. finetuning: the target skills (a subset of training skills).
    out_of_domain: the given evaluation skills, disjoint from the training skills.
    """
    if setting == "pretraining":
        if eval_skills and eval_skills != train_skills:
            raise ValueError(
                f"pretraining evaluates the training skills {train_skills}; data.eval_skills={eval_skills} "
                "differs: leave it empty or use mixture.setting=out_of_domain"
            )
        return list(train_skills)
    if setting == "finetuning":
        targets = target_skills or eval_skills
        unknown = [name for name in targets if name not in train_skills]
        if unknown:
            raise ValueError(
                f"fine-tuning target skill(s) {unknown} are not training skills {train_skills}; "
                "a target must be one of the training skills"
            )
        return list(targets)
    if setting == "out_of_domain":
        overlap = [name for name in eval_skills if name in train_skills]
        if overlap:
            raise ValueError(f"out_of_domain evaluation skills {overlap} are also training skills; keep them disjoint")
        return list(eval_skills)
    raise ValueError(f"setting={setting!r} must be pretraining, finetuning or out_of_domain")


def resolve_skills(config: JobConfig) -> SkillSetup:
    """Training and evaluation skills in graph order, checked against what the data offers."""
    data = config.data
    options = source_options(config)
    described = source_class(data.source).describe(config, options)
    available = described.pop("all_skills")
    train_skills = list(data.train_skills) or list(available)
    candidates = train_skills + list(data.eval_skills) + list(config.mixture.target_skills)
    unknown = [name for name in candidates if name not in available]
    if unknown:
        raise ValueError(
            f"skill(s) {unknown} named in the config are not in the data; available skills: {available}. "
            "Fix data.train_skills / data.eval_skills / mixture.target_skills"
        )
    eval_skills = resolve_eval_skills(
        config.mixture.setting, train_skills, list(data.eval_skills), list(config.mixture.target_skills)
    )
    setup = SkillSetup(
        kind=data.source, train_skills=train_skills, eval_skills=eval_skills, all_skills=available,
        options=options_as_dict(options), **described,
    )  # fmt: skip
    source_for(setup).check(config)
    return setup


def load_skill_tokenizer(setup: SkillSetup):
    """The run's local tokenizer: the dataset's / configured directory, else built from the generator vocabulary."""
    return source_for(setup).load_tokenizer()


def load_validation_sets(config: JobConfig, setup: SkillSetup, tokenizer) -> list[ValidationSet]:
    """Fixed validation data per evaluation skill (the same on every worker and every run)."""
    source = source_for(setup)
    return [source.validation_set(skill, tokenizer, config) for skill in setup.eval_skills]


def skill_datasets(config: JobConfig, setup: SkillSetup) -> dict[str, Any]:
    """Per training skill, the Ray Data dataset Ray Train splits across workers, when the source is read
    that way (`reader: streaming_split`); empty otherwise."""
    source = source_for(setup)
    tokenizer = source.load_tokenizer()
    datasets = {skill: source.ray_dataset(skill, tokenizer, config) for skill in setup.train_skills}
    return {skill: dataset for skill, dataset in datasets.items() if dataset is not None}
