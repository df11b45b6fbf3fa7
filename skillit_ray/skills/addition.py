"""Multi-digit addition skills (Skill-it! reference section 4.2, official `addition_dataset.py`).

Place in the flow: **generators** -> tokenizer -> data streams -> training/eval.

Two operands are drawn with `randint(0, 10**k - 1)` (upper bound exclusive, as in the
official code, so 0..998 for k = 3), zero-padded to k digits and written with spaces
between digits. Skill `addition_{d+1}` asks for digit d of the sum, counted from the
ones digit (d = 0). The thousands carry is never asked. Example:

    'Input: A = 8 2 9 + 7 8 2 , A 2 = ? Output: 6'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from skillit_ray.config.loading import require
from skillit_ray.skills.base import Sample, SkillGenerator

MAX_NUM_DIGITS = 18
"""Largest supported operand length; keeps operands inside numpy's int64 range."""

_ADDITION_PATTERN = re.compile(r"^Input: A = ([\d ]+) \+ ([\d ]+) , A (\d+) = \? Output:")


@dataclass(frozen=True)
class AdditionOptions:
    """`data.addition.*`: the addition skills."""

    num_digits: int = 3
    """Digits per operand (the paper uses 3); also the number of skills (one per digit of the sum)."""

    def __post_init__(self) -> None:
        require(
            1 <= self.num_digits <= MAX_NUM_DIGITS,
            f"data.addition.num_digits={self.num_digits} must be in 1..{MAX_NUM_DIGITS}",
        )


class AdditionGenerator(SkillGenerator):
    """k-digit addition generator with one skill per digit of the sum."""

    family = "addition"
    Options = AdditionOptions
    validation_seed = 420

    def __init__(self, num_digits: int = AdditionOptions.num_digits, num_validation_samples: int = 100) -> None:
        """Create a generator.

        Args:
            num_digits: Operand length k (the paper uses 3); also the number of skills.
            num_validation_samples: Validation samples reserved per skill (see base class).

        Raises:
            ValueError: If `num_digits` is not in [1, 18].
        """
        if not 1 <= num_digits <= MAX_NUM_DIGITS:
            raise ValueError(f"num_digits must be in [1, {MAX_NUM_DIGITS}], got {num_digits}")
        super().__init__(num_skills=num_digits, num_validation_samples=num_validation_samples)
        self.num_digits = num_digits

    def vocabulary(self) -> list[str]:
        """Every word an addition sentence can contain."""
        return ["Input", ":", "A", "=", "+", ",", "?", "Output", *[str(digit) for digit in range(10)]]

    def _draw(self, skill_index: int, rng: np.random.Generator) -> Sample:
        upper_exclusive = 10**self.num_digits - 1
        first = int(rng.integers(0, upper_exclusive))
        second = int(rng.integers(0, upper_exclusive))
        sum_digits_reversed = str(first + second).zfill(self.num_digits)[::-1]
        prompt = f"Input: A = {self._spaced(first)} + {self._spaced(second)} , A {skill_index} = ? Output: "
        return Sample(
            skill=self.skill_name(skill_index),
            prompt=prompt,
            answer=sum_digits_reversed[skill_index],
        )

    def _spaced(self, number: int) -> str:
        return " ".join(str(number).zfill(self.num_digits))


def solve_addition(sentence: str) -> int:
    """Compute the correct answer digit of an addition sentence (or prompt).

    Args:
        sentence: Text starting with "Input: A = ... Output:".

    Returns:
        Digit number `d` (0 = ones) of the sum that the sentence asks for.

    Raises:
        ValueError: If the sentence is malformed.
    """
    match = _ADDITION_PATTERN.match(sentence)
    if match is None:
        raise ValueError(f"not an addition sentence: {sentence!r}")
    first = int(match.group(1).replace(" ", ""))
    second = int(match.group(2).replace(" ", ""))
    digit_index = int(match.group(3))
    sum_digits_reversed = str(first + second)[::-1]
    if digit_index >= len(sum_digits_reversed):
        return 0
    return int(sum_digits_reversed[digit_index])
