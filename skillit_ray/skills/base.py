"""Shared types for the synthetic skill generators: `Sample` and the `SkillGenerator` base.

Place in the flow: **generators** -> tokenizer -> data streams -> training/eval. A generator
turns `(skill_index, global_index, seed)` into one text sample, so every Ray worker can
produce any part of any skill's infinite stream on its own, with no shared state and no
coordination.

Determinism. Training sample number `global_index` of skill `skill_index` is drawn from a
numpy generator seeded with `SeedSequence([seed, skill_index, global_index])`. The
validation set of a skill is the first `num_samples` draws of one generator seeded with
`SeedSequence([validation_seed, skill_index])`, where `validation_seed` is the one the
official code uses (42 for LEGO, 420 for addition).

Held-out guarantee (our replacement for the official per-skill dedup). The official code
keeps a set of every sentence it has emitted for a skill and rejects duplicates for the
lifetime of the dataset object. That needs shared state across workers, so we drop it.
Instead, a training draw that equals one of the skill's first `num_validation_samples`
validation samples is rejected, and the same generator draws again. The redraw is
deterministic, and training never sees a validation sample. Two training samples of the
same skill can still be equal; for LEGO (5 variables) the chance is negligible, and the
official addition generator has no dedup at all.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

MAX_CONSECUTIVE_REDRAWS = 10_000
"""Redraws allowed in a row before a skill is declared too small to hold out its
validation samples (e.g. LEGO with one variable has only 52 distinct sentences)."""


@dataclass(frozen=True)
class Sample:
    """One synthetic training or validation sample.

    Attributes:
        skill: Stable skill name, e.g. "lego_3" or "addition_1".
        prompt: Text up to, and including the space before, the answer.
        answer: The label, always a single digit such as "1".
        suffix: Text after the answer that the official format carries (", " for LEGO,
            "" for addition). It is trained on but never scored.
    """

    skill: str
    prompt: str
    answer: str
    suffix: str = ""

    @property
    def text(self) -> str:
        """The full training sentence, exactly as the official generator writes it."""
        return self.prompt + self.answer + self.suffix


class SkillGenerator(abc.ABC):
    """Base class for deterministic, infinite per-skill sample streams.

    Subclasses set `family`, `Options` and `validation_seed`, implement `_draw` and `vocabulary`,
    and call `__init__` with their number of skills. A subclass in a module of this package is a
    data source by its family name (`data.source: <family>`, options `data.<family>.*`); see `registry.py`.
    """

    family: ClassVar[str]
    """Prefix of the skill names; skill i (0-based) is named f"{family}_{i + 1}"."""
    Options: ClassVar[type]
    """Dataclass of the generator's options (`data.<family>.*`); its defaults are the constructor's."""
    validation_seed: ClassVar[int]
    """Seed of the fixed validation sets (the official code's value)."""
    deduplicate_validation: ClassVar[bool] = False
    """Whether a validation set skips repeated samples, as the official generator does."""

    def __init__(self, num_skills: int, num_validation_samples: int = 100) -> None:
        """Set up the skill list and the held-out validation pool size.

        Args:
            num_skills: Number of skills this generator produces.
            num_validation_samples: Validation samples reserved per skill; training
                streams never emit any of them, and `validation_set` can return at most
                this many. The official code uses 100.

        Raises:
            ValueError: If `num_validation_samples` is not positive.
        """
        if num_validation_samples < 1:
            raise ValueError(f"num_validation_samples must be >= 1, got {num_validation_samples}")
        self._num_skills = num_skills
        self.num_validation_samples = num_validation_samples
        self._validation_pools: dict[int, list[Sample]] = {}
        self._validation_texts: dict[int, frozenset[str]] = {}

    @property
    def num_skills(self) -> int:
        """Number of skills."""
        return self._num_skills

    @property
    def skill_names(self) -> list[str]:
        """Ordered, stable skill names, e.g. ["lego_1", ..., "lego_5"]."""
        return [self.skill_name(index) for index in range(self._num_skills)]

    def skill_name(self, skill_index: int) -> str:
        """The name of skill `skill_index` (0-based), e.g. "lego_3"; one string, not the whole list per sample."""
        return f"{self.family}_{skill_index + 1}"

    @abc.abstractmethod
    def vocabulary(self) -> list[str]:
        """Every word (pre-tokenized unit) that this generator can emit."""

    @abc.abstractmethod
    def _draw(self, skill_index: int, rng: np.random.Generator) -> Sample:
        """Draw one sample of skill `skill_index` from `rng`."""

    def sample_by_index(self, skill_index: int, global_index: int, seed: int) -> Sample:
        """Return sample number `global_index` of the training stream of one skill.

        The result depends only on the three arguments, so any worker can produce any
        sample independently of which other indices were drawn.

        Args:
            skill_index: 0-based skill index.
            global_index: Position in the skill's infinite stream, >= 0.
            seed: Stream seed, >= 0.

        Returns:
            The sample; never equal to one of the skill's reserved validation samples.

        Raises:
            ValueError: If an index or the seed is out of range.
        """
        self._check_skill_index(skill_index)
        if global_index < 0 or seed < 0:
            raise ValueError(f"global_index and seed must be >= 0, got {global_index} and {seed}")
        rng = np.random.default_rng(np.random.SeedSequence([seed, skill_index, global_index]))
        held_out = self._held_out_texts(skill_index)
        for _ in range(MAX_CONSECUTIVE_REDRAWS):
            sample = self._draw(skill_index, rng)
            if sample.text not in held_out:
                return sample
        raise self._too_few_distinct_samples(skill_index)

    def generate(self, skill_index: int, num_samples: int, seed: int) -> list[Sample]:
        """Return the first `num_samples` samples of one skill's training stream.

        Args:
            skill_index: 0-based skill index.
            num_samples: Number of samples, >= 0.
            seed: Stream seed, >= 0.

        Returns:
            `[sample_by_index(skill_index, i, seed) for i in range(num_samples)]`.

        Raises:
            ValueError: If an argument is out of range.
        """
        if num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {num_samples}")
        return [self.sample_by_index(skill_index, index, seed) for index in range(num_samples)]

    def validation_set(self, skill_index: int, num_samples: int = 100) -> list[Sample]:
        """Return the fixed validation samples of one skill (the same on every call).

        Args:
            skill_index: 0-based skill index.
            num_samples: How many to return, at most `num_validation_samples`.

        Returns:
            The first `num_samples` samples of the skill's validation pool.

        Raises:
            ValueError: If `skill_index` or `num_samples` is out of range.
        """
        self._check_skill_index(skill_index)
        if not 1 <= num_samples <= self.num_validation_samples:
            raise ValueError(
                f"num_samples={num_samples} must be in [1, {self.num_validation_samples}]; "
                "raise the generator option num_validation_samples to get more"
            )
        return list(self._validation_pool(skill_index)[:num_samples])

    def _validation_pool(self, skill_index: int) -> list[Sample]:
        if skill_index not in self._validation_pools:
            rng = np.random.default_rng(np.random.SeedSequence([self.validation_seed, skill_index]))
            pool: list[Sample] = []
            seen: set[str] = set()
            consecutive_redraws = 0
            while len(pool) < self.num_validation_samples:
                sample = self._draw(skill_index, rng)
                if self.deduplicate_validation and sample.text in seen:
                    consecutive_redraws += 1
                    if consecutive_redraws >= MAX_CONSECUTIVE_REDRAWS:
                        raise self._too_few_distinct_samples(skill_index)
                    continue
                consecutive_redraws = 0
                seen.add(sample.text)
                pool.append(sample)
            self._validation_pools[skill_index] = pool
        return self._validation_pools[skill_index]

    def _held_out_texts(self, skill_index: int) -> frozenset[str]:
        if skill_index not in self._validation_texts:
            pool = self._validation_pool(skill_index)
            self._validation_texts[skill_index] = frozenset(sample.text for sample in pool)
        return self._validation_texts[skill_index]

    def _too_few_distinct_samples(self, skill_index: int) -> ValueError:
        return ValueError(
            f"skill {self.skill_name(skill_index)!r} has too few distinct samples to hold out "
            f"num_validation_samples={self.num_validation_samples} and still train; lower "
            "num_validation_samples or make the task larger"
        )

    def _check_skill_index(self, skill_index: int) -> None:
        if not 0 <= skill_index < self._num_skills:
            raise ValueError(
                f"skill_index={skill_index} is out of range for {self.family} with "
                f"{self._num_skills} skills (valid: 0..{self._num_skills - 1})"
            )
