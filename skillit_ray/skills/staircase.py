"""Staircase chain skills: an ordered LEGO chain at fixed positions, one skill per depth.

Place in the flow: **generators** -> tokenizer -> data streams -> training/eval.

A sentence is a chain of `chain_length` binary variables written as in LEGO (`lego.py`), but
compactly and in chain order: the root constant, then one modifier per later variable, `val`
(copy the parent) or `not` (negate it). Variable i (named `a`, `b`, `c`, ... by its depth)
always sits at the same token position, and its value is the parity (XOR) of the root and the
first i - 1 modifiers. Skill `staircase_i` (1-indexed, i <= num_skills) asks for variable i:

    'Input: 1 val not not val val val val val val. Output: c = val 0, '

(root a = 1, b = val a = 1, c = not b = 0). Variables after `num_skills` are never asked
about; they make the space of sentences large (2**chain_length per skill), so a skill cannot be
learned by memorizing its few distinct sentences and the 100 validation sentences stay unseen.

This is a "staircase" family in the sense of Abbe et al. (NeurIPS 2021; COLT 2023): the target
of skill i is the target of skill i - 1 XOR one new bit at a fixed position. `staircase_1` only
copies the root constant; a model that computes skill i - 1 is one step away from skill i,
while a model that knows nothing faces a parity of i bits.

`negation_probability` (q) sets how often a modifier is `not`. At 0.5 variable i is independent
of variable i - 1 (a pure parity chain); below 0.5 it agrees with its parent with probability
1 - q, so a model that answers skill i - 1 is right on skill i with that probability: the chain
shows up in loss-drop skills graphs, and parities become visible to gradients (biased inputs,
Cornacchia and Mossel 2023). Measured with the 2-layer "tiny" GPT-2 from scratch (q = 0.25, chain
10): skill 1 alone is learned in 50-150 steps; skill 2 with skill 1 in the mix
in ~300 steps, alone in ~700; a uniform mixture over 4 skills often sits on a plateau for 1000+
steps, and a mixture that first concentrates on skill 1 learns all four in 1200 steps. The
efficiency benchmark's `staircase` setting measures it (docs/RESULTS.md).
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from skillit_ray.config.loading import require
from skillit_ray.skills.base import Sample, SkillGenerator
from skillit_ray.skills.lego import ANSWER_SUFFIX, OUTPUT_MARKER

VARIABLE_NAMES = list(string.ascii_lowercase)
"""Fixed variable names: variable i of the main chain is VARIABLE_NAMES[i]."""


@dataclass(frozen=True)
class StaircaseOptions:
    """`data.staircase.*`: the staircase chain."""

    num_skills: int = 4
    """Skills; skill i asks for the i-th variable of the chain."""
    chain_length: int = 12
    """Variables per sentence (num_skills <= chain_length <= 26); those after the asked ones are distractors."""
    negation_probability: float = 0.25
    """Probability that an asked variable's modifier negates its parent (0 < p <= 0.5)."""

    def __post_init__(self) -> None:
        require(
            1 <= self.num_skills <= self.chain_length <= len(VARIABLE_NAMES),
            f"data.staircase.num_skills={self.num_skills} <= data.staircase.chain_length={self.chain_length} <= 26 "
            "must hold",
        )
        require(
            0 < self.negation_probability <= 0.5,
            f"data.staircase.negation_probability={self.negation_probability} must be in (0, 0.5]",
        )


class StaircaseGenerator(SkillGenerator):
    """Ordered, fixed-position LEGO chain; skill i asks for the value of variable i."""

    family = "staircase"
    Options = StaircaseOptions
    validation_seed = 4242
    deduplicate_validation = True

    def __init__(
        self,
        num_skills: int = StaircaseOptions.num_skills,
        chain_length: int = StaircaseOptions.chain_length,
        negation_probability: float = StaircaseOptions.negation_probability,
        distractor_negation_probability: float = 0.5,
        num_validation_samples: int = 100,
    ) -> None:
        """Create a generator.

        Args:
            num_skills: Number of skills; skill i asks for variable i of the chain.
            chain_length: Variables in each sentence (>= num_skills, <= 26). Variables after
                `num_skills` are never asked about: they are distractors whose only role is
                to make the sentence space large (2**chain_length sentences per skill) so
                that a skill cannot be learned by memorizing its few distinct sentences.
            negation_probability: Probability that a modifier of an asked variable (variables
                2..num_skills) is `not` (0 < p <= 0.5).
            distractor_negation_probability: The same for the distractor variables after
                `num_skills` (0 < p <= 0.5). The default 0.5 spreads the sentences evenly over
                the distractors; with a small value the few most likely sentences carry much
                of the probability mass, and since training never emits a validation sentence
                (see base class), holding out 100 of them removes that mass from training
                (with 0.25 everywhere and chain_length 10: about 45% of it).
            num_validation_samples: Validation samples reserved per skill (see base class).

        Raises:
            ValueError: If an option is out of range.
        """
        if not 1 <= num_skills <= chain_length <= len(VARIABLE_NAMES):
            raise ValueError(
                f"need 1 <= num_skills <= chain_length <= {len(VARIABLE_NAMES)}, "
                f"got num_skills={num_skills}, chain_length={chain_length}"
            )
        for name, probability in (
            ("negation_probability", negation_probability),
            ("distractor_negation_probability", distractor_negation_probability),
        ):
            if not 0.0 < probability <= 0.5:
                raise ValueError(f"{name} must be in (0, 0.5], got {probability}")
        super().__init__(num_skills=num_skills, num_validation_samples=num_validation_samples)
        self.chain_length = chain_length
        self.negation_probability = negation_probability
        # modifier m (0-based) sets variable m + 2; the first num_skills - 1 set asked variables
        self._negation_thresholds = np.array(
            [negation_probability] * (num_skills - 1) + [distractor_negation_probability] * (chain_length - num_skills)
        )

    def vocabulary(self) -> list[str]:
        """Every word a staircase sentence can contain (a name for every chain variable)."""
        return ["Input", ":", "Output", "=", "val", "not", ",", ".", "0", "1", *VARIABLE_NAMES[: self.chain_length]]

    def _draw(self, skill_index: int, rng: np.random.Generator) -> Sample:
        root_value = int(rng.integers(0, 2))
        negations = rng.random(self.chain_length - 1) < self._negation_thresholds
        value = root_value
        for negated in negations[:skill_index]:
            value = 1 - value if negated else value
        modifiers = " ".join("not" if negated else "val" for negated in negations)
        prompt = f"Input: {root_value} {modifiers}{OUTPUT_MARKER} {VARIABLE_NAMES[skill_index]} = val "
        return Sample(skill=self.skill_name(skill_index), prompt=prompt, answer=str(value), suffix=ANSWER_SUFFIX)


def solve_staircase(sentence: str) -> dict[str, int]:
    """Solve a staircase sentence from its text (independent of the generator).

    Args:
        sentence: A full sentence or its prompt; only the part before ". Output:" is read.

    Returns:
        The value of every variable of the chain, by name.

    Raises:
        ValueError: If the sentence is malformed.
    """
    if not sentence.startswith("Input:") or OUTPUT_MARKER not in sentence:
        raise ValueError(f"not a staircase sentence: {sentence!r}")
    words = sentence[len("Input:") : sentence.index(OUTPUT_MARKER)].split()
    if not words or words[0] not in ("0", "1") or any(word not in ("val", "not") for word in words[1:]):
        raise ValueError(f"malformed staircase chain {words!r} in {sentence!r}")
    if len(words) > len(VARIABLE_NAMES):
        raise ValueError(f"chain of {len(words)} variables is longer than the {len(VARIABLE_NAMES)} names")
    values = {VARIABLE_NAMES[0]: int(words[0])}
    for depth, modifier in enumerate(words[1:], start=1):
        parent = values[VARIABLE_NAMES[depth - 1]]
        values[VARIABLE_NAMES[depth]] = parent if modifier == "val" else 1 - parent
    return values
