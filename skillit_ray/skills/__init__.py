"""Synthetic skills (LEGO, addition, the staircase chain, lookup chains), their word-level tokenizer and
answer-token evaluators.

Place in the flow: **generators** -> tokenizer -> data streams -> training/eval. Everything
here is pure Python/numpy/torch (no Ray) so that any worker can import it.

Use `get_skill_generator("lego", num_variables=5)` or `get_skill_generator("addition")`.
"""

from __future__ import annotations

from typing import Any

from skillit_ray.skills.addition import AdditionGenerator, solve_addition
from skillit_ray.skills.base import Sample, SkillGenerator
from skillit_ray.skills.lego import LegoGenerator, solve_lego
from skillit_ray.skills.lookup import LookupGenerator
from skillit_ray.skills.staircase import StaircaseGenerator, solve_staircase

SKILL_GENERATORS: dict[str, type[SkillGenerator]] = {
    "lego": LegoGenerator,
    "addition": AdditionGenerator,
    "staircase": StaircaseGenerator,
    "lookup": LookupGenerator,
}
"""Registry of generator families by name."""


def get_skill_generator(name: str, **options: Any) -> SkillGenerator:
    """Build a skill generator by family name.

    Args:
        name: a key of `SKILL_GENERATORS` ("lego", "addition", "staircase", "lookup").
        **options: Constructor options, e.g. `num_variables` (LEGO), `num_digits`
            (addition), `num_validation_samples` (both).

    Returns:
        The generator.

    Raises:
        ValueError: If `name` is unknown or an option value is out of range.
    """
    if name not in SKILL_GENERATORS:
        raise ValueError(f"unknown skill generator {name!r}; valid names: {sorted(SKILL_GENERATORS)}")
    return SKILL_GENERATORS[name](**options)


__all__ = [
    "SKILL_GENERATORS",
    "AdditionGenerator",
    "LegoGenerator",
    "LookupGenerator",
    "Sample",
    "SkillGenerator",
    "StaircaseGenerator",
    "get_skill_generator",
    "solve_addition",
    "solve_lego",
    "solve_staircase",
]
