"""The source interface of the data layer: what every kind of skill data provides.

Role in the flow: config -> sources (`sources/registry.py` picks the source and resolves the skills)
-> **source** -> streams/assembly. `SkillSetup` is the resolved, plain-data description of a run's
skills that the driver sends to every worker; `SkillSource` is what a worker asks for the tokenizer,
one training stream per skill, the fixed validation sets and curriculum pool items; `ValidationSet`
is one evaluation skill's held-out data.

A source is one module in `sources/` with one `SkillSource` subclass: its `names` (the
`data.source` values it serves), its `Options` dataclass (`data.<name>.*`, typed and checked by the
registry with the config's own loader) and the methods below. The registry finds it there.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from skillit_ray.config.job import JobConfig
from skillit_ray.data.tokens import encode_prompt_answer, encode_texts
from skillit_ray.skills.base import Sample
from skillit_ray.skills.evaluate import encode_answer_queries


@dataclass
class SkillSetup:
    """Resolved skill lists and where their data lives; the same on the driver and every worker."""

    kind: str
    """The `data.source` value: which source serves the data."""
    family: str
    """The data family: the generator family, or the manifest's source for a prepared directory."""
    train_skills: list[str]
    eval_skills: list[str]
    all_skills: list[str]
    dataset_path: str = ""
    tokenizer_path: str = ""
    generator_options: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    """The source's typed options (`data.<kind>.*`) as plain values, defaults filled in."""
    data_index: dict[str, Any] = field(default_factory=dict)
    """What the source read on the driver to find its data (a token store's manifest), so that workers
    read nothing more to open their streams."""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SkillSetup:
        return cls(**values)


@dataclass
class ValidationSet:
    """One evaluation skill's held-out data: synthetic samples (single-token answer: loss and accuracy),
    or token rows (text: every token; prompt/answer text: the answer tokens of `loss_mask`)."""

    skill: str
    samples: list[Sample] | None = None
    token_rows: np.ndarray | None = None
    loss_mask: np.ndarray | None = None
    """With token rows: True at the tokens that are scored (the answers of prompt/answer text)."""


@dataclass(frozen=True)
class NoOptions:
    """A source without options of its own."""


class SkillSource(abc.ABC):
    """The data of one run's skills. Subclasses implement `describe` (driver) and the worker methods."""

    names: ClassVar[tuple[str, ...]] = ()
    """The `data.source` values this class serves; the options of each are `data.<name>.*`."""
    Options: ClassVar[type] = NoOptions

    def __init__(self, setup: SkillSetup) -> None:
        self.setup = setup
        self.options = self.options_class(setup.kind)(**setup.options)

    @classmethod
    def options_class(cls, name: str) -> type:
        """The dataclass of `data.<name>.*`."""
        return cls.Options

    @classmethod
    def check_options(cls, options: Any, config: JobConfig) -> None:
        """Checks of the typed options against the rest of the config (before Ray starts); none by default."""
        return None

    @classmethod
    @abc.abstractmethod
    def describe(cls, config: JobConfig, options: Any) -> dict[str, Any]:
        """`SkillSetup` fields this source knows before skills are chosen: family, all_skills (ordered),
        dataset_path, tokenizer_path, generator_options, data_index."""

    @abc.abstractmethod
    def check(self, config: JobConfig) -> None:
        """Fail before any cluster work when the data of the resolved skills is missing or broken."""

    @abc.abstractmethod
    def load_tokenizer(self):
        """The run's local tokenizer (nothing is downloaded)."""

    @abc.abstractmethod
    def open_stream(self, skill: str, tokenizer, config: JobConfig, rank: int, world_size: int):
        """This rank's training stream of one skill: `take(count, first_global_index) -> token rows`."""

    @abc.abstractmethod
    def validation_set(self, skill: str, tokenizer, config: JobConfig) -> ValidationSet:
        """The fixed held-out data of one evaluation skill, the same on every worker and every run."""

    def validation_items(self, skill: str, config: JobConfig) -> list[Sample | str]:
        """The held-out items of `validation_set` as text (prompt/answer samples or documents), for tools
        that tokenize themselves (`skillit-ray evaluate --skill-tasks`)."""
        raise ValueError(
            f"data.source={self.setup.kind!r} keeps its validation data as token ids, not text; evaluate its "
            "skills as lm-eval tasks from the prepared directory or table the store was made from"
        )

    @abc.abstractmethod
    def pool_reader(self, skill: str, count: int, config: JobConfig) -> Callable[[int], Sample | str]:
        """Item i (0 <= i < count) of a skill for the sample-level curriculum's pool."""

    def sample_items(self, skill: str, count: int, config: JobConfig) -> list[Sample | str]:
        """The first `count` training items of a skill, for checks and data-shape defaults before a run."""
        reader = self.pool_reader(skill, count, config)
        return [reader(index) for index in range(count)]

    def ray_dataset(self, skill: str, tokenizer, config: JobConfig):
        """The skill's training rows as a Ray Data dataset when the source is read through Ray Train's
        streaming splits (`reader: streaming_split`; `data/ray_datasets.py`), else None."""
        return None

    def stored_shape(self) -> tuple[int, bool] | None:
        """(tokens per row, packed) when the data is stored tokenized (fixed), else None: the run chooses."""
        return None

    def packs_text(self) -> bool:
        """Whether plain text from this source may be packed into full rows (`data.pack_sequences` unset)."""
        return True


def options_as_dict(options: Any) -> dict[str, Any]:
    """Typed options as the plain mapping a `SkillSetup` carries to the workers."""
    return dataclasses.asdict(options)


def validation_from_items(skill: str, items: list[Sample | str], tokenizer, sequence_length: int) -> ValidationSet:
    """A validation set from held-out items: texts are scored on every token; prompt/answer samples by
    answer-token loss and accuracy when every answer is one token (the synthetic skills), else on the
    answer tokens of the jointly tokenized text."""
    if not items or not isinstance(items[0], Sample):
        return ValidationSet(skill, token_rows=encode_texts(tokenizer, list(items), sequence_length))
    try:
        encode_answer_queries(tokenizer, items)
        return ValidationSet(skill, samples=list(items))
    except ValueError:  # a multi-token answer: score its tokens within the row
        prompts, answers = [item.prompt for item in items], [item.answer + item.suffix for item in items]
        rows, answer_mask = encode_prompt_answer(tokenizer, prompts, answers, sequence_length)
        return ValidationSet(skill, token_rows=rows, loss_mask=answer_mask)
