"""LEGO synthetic reasoning skills (Skill-it! reference section 4.1, official `lego_dataset.py`).

Place in the flow: **generators** -> tokenizer -> data streams -> training/eval.

A sentence assigns binary values to `num_variables` variables along a chain: the root gets
a constant and every other variable copies (`val`) or negates (`not`) its parent. Skill
`lego_i` (1-indexed) asks for the value of the variable at depth i - 1, so `lego_1` reads
the root and `lego_5` needs the whole chain. Example (note the double spaces, the shuffled
clauses and the trailing ", "):

    'Input: t = val 1 ,  p = val m ,  r = not s ,  s = val p ,  m = val t. Output: m = val 1, '

Only the default path-shaped reasoning graph is implemented; the official "tree" and
"disconnected" variants crash in the official code and are unused by the paper.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from skillit_ray.config.loading import require
from skillit_ray.skills.base import Sample, SkillGenerator

ALPHABET = list(string.ascii_lowercase)
"""Variable names; each sentence uses a random permutation of them."""
ANSWER_SUFFIX = ", "
"""Text after the label in the official format."""
OUTPUT_MARKER = ". Output:"


@dataclass(frozen=True)
class LegoOptions:
    """`data.lego.*`: the LEGO skills."""

    num_variables: int = 5
    """Chain length k (the paper uses 5); also the number of skills (lego_1 .. lego_k), in 1..26."""

    def __post_init__(self) -> None:
        require(
            1 <= self.num_variables <= len(ALPHABET),
            f"data.lego.num_variables={self.num_variables} must be in 1..26 (one letter per variable)",
        )


class LegoGenerator(SkillGenerator):
    """LEGO chain-reasoning generator with one skill per chain depth."""

    family = "lego"
    Options = LegoOptions
    validation_seed = 42
    # The official generator rejects repeated sentences per skill, validation included.
    deduplicate_validation = True

    def __init__(self, num_variables: int = LegoOptions.num_variables, num_validation_samples: int = 100) -> None:
        """Create a generator.

        Args:
            num_variables: Chain length k (the paper uses 5); also the number of skills.
            num_validation_samples: Validation samples reserved per skill (see base class).

        Raises:
            ValueError: If `num_variables` is not in [1, 26].
        """
        if not 1 <= num_variables <= len(ALPHABET):
            raise ValueError(f"num_variables must be in [1, {len(ALPHABET)}], got {num_variables}")
        super().__init__(num_skills=num_variables, num_validation_samples=num_validation_samples)
        self.num_variables = num_variables

    def vocabulary(self) -> list[str]:
        """Every word a LEGO sentence can contain."""
        return ["Input", ":", "Output", "=", "val", "not", ",", ".", "0", "1", *ALPHABET]

    def _draw(self, skill_index: int, rng: np.random.Generator) -> Sample:
        # Same draw order as the official code: values, names, clause order.
        # Python ints and lists from here: numpy scalars cost ~0.1 us per comparison or index.
        values = rng.integers(0, 2, size=self.num_variables).tolist()
        names = [ALPHABET[index] for index in rng.permutation(len(ALPHABET)).tolist()]
        # The root clause has no leading space, the others do; joined, this gives the
        # official double spaces after each " , ".
        clauses = [f"{names[0]} = val {values[0]} , "]
        for depth in range(1, self.num_variables):
            modifier = "val" if values[depth] == values[depth - 1] else "not"
            clauses.append(f" {names[depth]} = {modifier} {names[depth - 1]} , ")
        clause_order = rng.permutation(self.num_variables).tolist()
        body = "".join(clauses[index] for index in clause_order)
        body = body[: -len(" , ")]
        prompt = f"Input: {body}{OUTPUT_MARKER} {names[skill_index]} = val "
        return Sample(
            skill=self.skill_name(skill_index),
            prompt=prompt,
            answer=str(values[skill_index]),
            suffix=ANSWER_SUFFIX,
        )


def solve_lego(sentence: str) -> dict[str, int]:
    """Solve a LEGO sentence by parsing its clauses, independently of the generator.

    Args:
        sentence: A full sentence or just its prompt; only the part before ". Output:"
            is read.

    Returns:
        The value of every variable in the input clauses.

    Raises:
        ValueError: If the sentence is malformed or its clauses cannot be resolved.
    """
    if not sentence.startswith("Input:") or OUTPUT_MARKER not in sentence:
        raise ValueError(f"not a LEGO sentence: {sentence!r}")
    body = sentence[len("Input:") : sentence.index(OUTPUT_MARKER)]
    rules: dict[str, tuple[str, str]] = {}
    for clause in body.split(","):
        words = clause.split()
        if len(words) != 4 or words[1] != "=" or words[2] not in ("val", "not"):
            raise ValueError(f"malformed LEGO clause {clause!r} in {sentence!r}")
        rules[words[0]] = (words[2], words[3])
    values: dict[str, int] = {}
    while len(values) < len(rules):
        progressed = False
        for name, (modifier, source) in rules.items():
            if name in values:
                continue
            if source in ("0", "1"):
                values[name] = int(source)
            elif source in values:
                values[name] = values[source] if modifier == "val" else 1 - values[source]
            else:
                continue
            progressed = True
        if not progressed:
            raise ValueError(f"unresolvable LEGO clauses in {sentence!r}")
    return values
