"""The registry of synthetic skill families: family name -> generator class, found in this package.

Role in the flow: skills -> **registry** -> data (the generator sources: `data.source: lego`, ...,
`skillit-ray prepare lego`). Every `SkillGenerator` subclass with a `family` in a module of this
package is registered, so a new family is one module (and its test).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import skillit_ray.skills as skills_package
from skillit_ray.config.plugins import registry
from skillit_ray.skills.base import SkillGenerator


@cache
def skill_generators() -> dict[str, type[SkillGenerator]]:
    """Every generator family by name, in name order."""
    return registry(skills_package, SkillGenerator, lambda cls: [cls.family] if getattr(cls, "family", "") else [])


def get_skill_generator(name: str, **options: Any) -> SkillGenerator:
    """Build a skill generator by family name.

    Args:
        name: a family of `skill_generators()` ("addition", "lego", "lookup", "staircase").
        **options: Constructor options: the family's `Options` fields (e.g. `num_variables` for LEGO)
            and `num_validation_samples`.

    Returns:
        The generator.

    Raises:
        ValueError: If `name` is unknown or an option value is out of range.
    """
    generators = skill_generators()
    if name not in generators:
        raise ValueError(f"unknown skill generator {name!r}; valid names: {sorted(generators)}")
    return generators[name](**options)
