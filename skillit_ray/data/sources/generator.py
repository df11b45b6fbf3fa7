"""The built-in skill generators as sources: samples made on the fly, sample i of a skill a pure function of
(seed, skill, i).

Role in the flow: skills (a generator family) -> **generator source** -> assembly. Every family of
`skillit_ray/skills/` is a `data.source` value by its name (lego, addition, staircase, lookup, ...),
with the family's own options under `data.<family>.*` (its `Options` dataclass). Fresh samples every
round, as the paper does; the held-out validation sets are fixed per family. Each rank takes a
disjoint slice of every step's global positions, so the global batch, and the run, do not depend on
the number of workers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from skillit_ray.config.job import JobConfig
from skillit_ray.data.source import SkillSetup, SkillSource, ValidationSet
from skillit_ray.data.tokenizer import load_checked_tokenizer
from skillit_ray.data.tokens import encode_texts
from skillit_ray.skills.base import Sample
from skillit_ray.skills.registry import get_skill_generator, skill_generators
from skillit_ray.skills.tokenizer import build_tokenizer


class GeneratorSource(SkillSource):
    """A synthetic skill family generated on the fly (any family of `skills/`)."""

    names = tuple(skill_generators())

    @classmethod
    def options_class(cls, name: str) -> type:
        return skill_generators()[name].Options

    @classmethod
    def describe(cls, config: JobConfig, options: Any) -> dict[str, Any]:
        family = config.data.source
        generator_options = {**dataclasses.asdict(options), "num_validation_samples": config.data.num_val_per_skill}
        try:
            generator = get_skill_generator(family, **generator_options)
        except ValueError as error:
            raise ValueError(f"data.{family}: {error}") from None
        return {
            "family": family,
            "all_skills": generator.skill_names,
            "tokenizer_path": config.data.tokenizer_path,
            "generator_options": generator_options,
        }

    @property
    def generator(self):
        return get_skill_generator(self.setup.family, **self.setup.generator_options)

    def check(self, config: JobConfig) -> None:
        pass  # generated on demand: nothing on disk to check

    def load_tokenizer(self):
        if self.setup.tokenizer_path:
            return load_checked_tokenizer(self.setup.tokenizer_path)
        return build_tokenizer(self.generator.vocabulary())

    def open_stream(self, skill: str, tokenizer, config: JobConfig, rank: int, world_size: int):
        return GeneratorSkillStream(self.setup, skill, tokenizer, config.data.sequence_length, config.train.seed)

    def validation_set(self, skill: str, tokenizer, config: JobConfig) -> ValidationSet:
        return ValidationSet(skill, samples=self.validation_items(skill, config))

    def validation_items(self, skill: str, config: JobConfig) -> list[Sample]:
        generator = self.generator
        return generator.validation_set(generator.skill_names.index(skill), config.data.num_val_per_skill)

    def pool_reader(self, skill: str, count: int, config: JobConfig) -> Callable[[int], Sample]:
        generator = self.generator
        skill_index, seed = generator.skill_names.index(skill), config.train.seed
        return lambda index: generator.sample_by_index(skill_index, index, seed)


class GeneratorSkillStream:
    """Fresh synthetic samples; sample i of the skill depends only on (seed, skill, i)."""

    def __init__(self, setup: SkillSetup, skill: str, tokenizer, sequence_length: int, seed: int) -> None:
        self.generator = get_skill_generator(setup.family, **setup.generator_options)
        self.skill_index = self.generator.skill_names.index(skill)
        self.tokenizer, self.sequence_length, self.seed = tokenizer, sequence_length, seed

    def take(self, count: int, first_global_index: int) -> np.ndarray:
        samples = [
            self.generator.sample_by_index(self.skill_index, first_global_index + offset, self.seed)
            for offset in range(count)
        ]
        return encode_texts(self.tokenizer, [sample.text for sample in samples], self.sequence_length)

    def state_dict(self) -> dict[str, Any]:
        return {}  # positions are global and kept by the assembler

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
