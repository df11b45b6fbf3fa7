"""Lookup chains: LEGO's sentences without negation, for pre-training a base that follows pointers.

Place in the flow: **generators** -> tokenizer -> data streams -> training (`skillit-ray pretrain`),
then LEGO continues from the saved base (`model.pretrained_path`), as the paper continues a
pre-trained model.

A sentence holds `num_chains` chains of `num_variables` variables in LEGO's format (`lego.py`),
clauses shuffled together: each root is a constant, every other variable copies (`val`) its parent.
The roots of different chains hold different constants, so the answer cannot be read off any
single clause: the model has to find the clause that defines the asked variable, then its
parent's, down to the root. Skill `lookup_i` asks for a variable at depth i - 1 (i hops):

    'Input: q = val m ,  m = val 1 ,  c = val 0 ,  x = val c. Output: q = val 1, '

LEGO needs the same lookups plus the parity of the `not`s on the way, so this is its first-order
part: the "lookup and induction" a pre-trained language model brings to the paper's LEGO runs
(reference section 4.1) and a model from scratch lacks (science notes, section 1). The words are
LEGO's, so the word-level tokenizer, and with it every token id, is the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skillit_ray.config.loading import require
from skillit_ray.skills.base import Sample, SkillGenerator
from skillit_ray.skills.lego import ALPHABET, ANSWER_SUFFIX, OUTPUT_MARKER, LegoGenerator


@dataclass(frozen=True)
class LookupOptions:
    """`data.lookup.*`: the lookup chains (LEGO's words without negation, a pre-training corpus)."""

    num_variables: int = 5
    """Variables per chain (LEGO's k); also the number of skills."""
    num_chains: int = 2
    """Chains per sentence: >= 2, with num_chains x num_variables <= 26 (one letter per variable)."""

    def __post_init__(self) -> None:
        require(self.num_variables >= 1, f"data.lookup.num_variables={self.num_variables} must be >= 1")
        require(
            2 <= self.num_chains and self.num_chains * self.num_variables <= len(ALPHABET),
            f"data.lookup.num_chains={self.num_chains} must be >= 2 with data.lookup.num_chains * "
            f"data.lookup.num_variables <= 26 (one letter per variable; num_variables={self.num_variables})",
        )


class LookupGenerator(SkillGenerator):
    """Shuffled copy-only chains with distinct root constants; skill i asks for a variable i - 1 deep."""

    family = "lookup"
    Options = LookupOptions
    validation_seed = 4343
    deduplicate_validation = True

    def __init__(
        self,
        num_variables: int = LookupOptions.num_variables,
        num_chains: int = LookupOptions.num_chains,
        num_validation_samples: int = 100,
    ) -> None:
        """Create a generator.

        Args:
            num_variables: Variables per chain (LEGO's k); also the number of skills.
            num_chains: Chains per sentence (2 or more, at most 26 variables in all); only two
                constants exist, so chains after the second repeat one of them.
            num_validation_samples: Validation samples reserved per skill (see base class).

        Raises:
            ValueError: If an option is out of range.
        """
        if num_chains < 2 or not 1 <= num_variables * num_chains <= len(ALPHABET):
            raise ValueError(
                f"need num_chains >= 2 and num_variables * num_chains <= {len(ALPHABET)}, "
                f"got num_variables={num_variables}, num_chains={num_chains}"
            )
        super().__init__(num_skills=num_variables, num_validation_samples=num_validation_samples)
        self.num_variables, self.num_chains = num_variables, num_chains

    def vocabulary(self) -> list[str]:
        """LEGO's words, so a LEGO run continues from this base with the same token ids."""
        return LegoGenerator(num_variables=self.num_variables).vocabulary()

    def _draw(self, skill_index: int, rng: np.random.Generator) -> Sample:
        first_root = int(rng.integers(0, 2))
        names = [ALPHABET[index] for index in rng.permutation(len(ALPHABET))]
        clauses, chains = [], []
        for chain in range(self.num_chains):
            chain_names = names[chain * self.num_variables : (chain + 1) * self.num_variables]
            root = first_root if chain % 2 == 0 else 1 - first_root
            clauses.append(f"{chain_names[0]} = val {root}")
            clauses.extend(f"{name} = val {parent}" for parent, name in zip(chain_names, chain_names[1:]))
            chains.append((chain_names, root))
        asked_names, answer = chains[int(rng.integers(0, self.num_chains))]
        body = " ,  ".join(clauses[index] for index in rng.permutation(len(clauses)))
        prompt = f"Input: {body}{OUTPUT_MARKER} {asked_names[skill_index]} = val "
        return Sample(skill=self.skill_name(skill_index), prompt=prompt, answer=str(answer), suffix=ANSWER_SUFFIX)
