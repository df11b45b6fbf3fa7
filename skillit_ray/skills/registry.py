"""The registry of synthetic skill families: name -> generator class.

Role in the flow: skills -> **registry** -> data (the generator sources, `skillit-ray prepare`).
"""

from __future__ import annotations

from typing import Any

from skillit_ray.skills.addition import AdditionGenerator
from skillit_ray.skills.base import SkillGenerator
from skillit_ray.skills.lego import LegoGenerator
from skillit_ray.skills.lookup import LookupGenerator
from skillit_ray.skills.staircase import StaircaseGenerator

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
