"""Tests for the synthetic skill generators (LEGO, addition): labels, format, determinism.

Run: `python -m pytest tests/test_skills.py -q`
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from skillit_ray.skills.addition import AdditionGenerator, solve_addition
from skillit_ray.skills.base import Sample
from skillit_ray.skills.lego import ALPHABET, LegoGenerator, solve_lego
from skillit_ray.skills.registry import get_skill_generator

LEGO_EXAMPLE = "Input: t = val 1 ,  p = val m ,  r = not s ,  s = val p ,  m = val t. Output: m = val 1, "
ADDITION_EXAMPLE = "Input: A = 8 2 9 + 7 8 2 , A 2 = ? Output: 6"
NUM_SAMPLES_PER_SKILL = 2000


def _lego_query(sentence: str) -> tuple[str, int]:
    match = re.search(r"\. Output: ([a-z]) = val ([01]), $", sentence)
    assert match is not None, sentence
    return match.group(1), int(match.group(2))


class _ScriptedRng:
    """Replays chosen integers/permutations so the generator rebuilds a known sentence."""

    def __init__(self, values: list[int], name_order: list[int], clause_order: list[int]) -> None:
        self._values = np.array(values)
        self._permutations = [np.array(name_order), np.array(clause_order)]

    def integers(self, low: int, high: int, size: int) -> np.ndarray:
        return self._values

    def permutation(self, length: int) -> np.ndarray:
        return self._permutations.pop(0)


def test_lego_labels_match_solver_for_every_skill() -> None:
    generator = LegoGenerator()
    for skill_index in range(generator.num_skills):
        for sample in generator.generate(skill_index, NUM_SAMPLES_PER_SKILL, seed=7):
            variable, label = _lego_query(sample.text)
            assert solve_lego(sample.text)[variable] == label == int(sample.answer)
            assert sample.skill == f"lego_{skill_index + 1}"


def test_lego_variable_depth_matches_skill() -> None:
    generator = LegoGenerator()
    for skill_index in range(generator.num_skills):
        for sample in generator.generate(skill_index, 50, seed=3):
            variable, _ = _lego_query(sample.text)
            body = sample.text[len("Input:") : sample.text.index(". Output:")]
            parent = {clause.split()[0]: clause.split()[3] for clause in body.split(",")}
            depth = 0
            while parent[variable] not in ("0", "1"):
                variable = parent[variable]
                depth += 1
            assert depth == skill_index


def test_lego_reproduces_the_reference_example_exactly() -> None:
    # Parse the example: chain t -> m -> p -> s -> r ("p = val m" means p := m) with values
    # 1, 1, 1, 1, 0; the query m sits at depth 1, so this is skill lego_2.
    names = ["t", "m", "p", "s", "r"]
    name_order = [ALPHABET.index(name) for name in names] + [
        index for index, letter in enumerate(ALPHABET) if letter not in names
    ]
    clause_order = [0, 2, 4, 3, 1]  # printed order t, p, r, s, m of the depth-ordered clauses
    rng = _ScriptedRng(values=[1, 1, 1, 1, 0], name_order=name_order, clause_order=clause_order)
    sample = LegoGenerator()._draw(1, rng)  # type: ignore[arg-type]
    assert sample.text == LEGO_EXAMPLE
    assert sample.prompt == LEGO_EXAMPLE[: -len("1, ")]
    assert sample.prompt.endswith("Output: m = val ")
    assert (sample.answer, sample.suffix, sample.skill) == ("1", ", ", "lego_2")
    assert solve_lego(LEGO_EXAMPLE) == {"t": 1, "m": 1, "p": 1, "s": 1, "r": 0}


def test_lego_format_invariants() -> None:
    for sample in LegoGenerator().generate(4, 200, seed=0):
        text = sample.text
        assert text.startswith("Input: ") and text.endswith(", ") and text.isascii()
        assert text.count(" = ") == 6
        assert re.fullmatch(r"Input:  ?[a-z] = .*\. Output: [a-z] = val [01], ", text)
        assert set(sample.answer) <= {"0", "1"} and len(sample.answer) == 1


def test_lego_single_variable_and_limits() -> None:
    # One variable allows only 26 * 2 = 52 distinct sentences: 100 held out cannot work.
    with pytest.raises(ValueError, match="too few distinct samples"):
        LegoGenerator(num_variables=1).sample_by_index(0, 0, seed=0)
    generator = LegoGenerator(num_variables=1, num_validation_samples=10)
    assert generator.skill_names == ["lego_1"]
    sample = generator.sample_by_index(0, 0, seed=0)
    assert re.fullmatch(r"Input: ([a-z]) = val ([01])\. Output: \1 = val \2, ", sample.text)
    assert len(LegoGenerator(num_variables=26).vocabulary()) == 36
    for bad in (0, 27):
        with pytest.raises(ValueError, match=str(bad)):
            LegoGenerator(num_variables=bad)


def test_addition_labels_match_solver_for_every_skill() -> None:
    generator = AdditionGenerator()
    for skill_index in range(generator.num_skills):
        for sample in generator.generate(skill_index, NUM_SAMPLES_PER_SKILL, seed=7):
            assert solve_addition(sample.text) == int(sample.answer)
            assert sample.skill == f"addition_{skill_index + 1}"
            assert f" , A {skill_index} = ? Output: " in sample.prompt


def test_addition_reproduces_the_reference_example_exactly() -> None:
    # 829 + 782 = 1611; hundreds digit (skill addition_3, digit index 2) is 6.
    class _Operands:
        def __init__(self) -> None:
            self._draws = [829, 782]

        def integers(self, low: int, high: int) -> int:
            assert (low, high) == (0, 999)  # upper bound exclusive: operands are 0..998
            return self._draws.pop(0)

    sample = AdditionGenerator()._draw(2, _Operands())  # type: ignore[arg-type]
    assert sample.text == ADDITION_EXAMPLE
    assert sample.prompt == "Input: A = 8 2 9 + 7 8 2 , A 2 = ? Output: "
    assert (sample.answer, sample.suffix, sample.skill) == ("6", "", "addition_3")
    assert solve_addition(ADDITION_EXAMPLE) == 6


def test_addition_operands_are_zero_padded_and_in_range() -> None:
    pattern = re.compile(r"Input: A = (\d) (\d) (\d) \+ (\d) (\d) (\d) , A [012] = \? Output: \d")
    operands = []
    for sample in AdditionGenerator().generate(0, NUM_SAMPLES_PER_SKILL, seed=1):
        match = pattern.fullmatch(sample.text)
        assert match is not None, sample.text
        operands.append(int("".join(match.groups()[:3])))
    assert max(operands) <= 998 and min(operands) < 10  # padding exercised
    assert AdditionGenerator(num_digits=4).sample_by_index(3, 0, 0).skill == "addition_4"
    for bad in (0, 19):
        with pytest.raises(ValueError, match=str(bad)):
            AdditionGenerator(num_digits=bad)


@pytest.mark.parametrize("name", ["lego", "addition"])
def test_generation_is_deterministic_and_index_addressable(name: str) -> None:
    generator = get_skill_generator(name)
    first = generator.generate(1, 30, seed=5)
    assert first == get_skill_generator(name).generate(1, 30, seed=5)
    assert first != generator.generate(1, 30, seed=6)
    # Any index can be produced alone, in any order, by a fresh generator.
    fresh = get_skill_generator(name)
    for index in (29, 3, 17, 0):
        assert fresh.sample_by_index(1, index, seed=5) == first[index]
    assert len({sample.text for sample in first}) == len(first)


@pytest.mark.parametrize("name", ["lego", "addition"])
def test_validation_sets_are_fixed_and_held_out(name: str) -> None:
    generator = get_skill_generator(name)
    for skill_index in range(generator.num_skills):
        validation = generator.validation_set(skill_index)
        assert len(validation) == 100
        assert validation == get_skill_generator(name).validation_set(skill_index)
        assert generator.validation_set(skill_index, 10) == validation[:10]
        held_out = {sample.text for sample in validation}
        # The training stream seeded with the validation seed would otherwise replay it.
        for seed in (0, generator.validation_seed):
            training = generator.generate(skill_index, 300, seed=seed)
            assert not held_out & {sample.text for sample in training}


def test_training_redraws_a_sample_equal_to_a_validation_sample() -> None:
    class _TwoSamples(LegoGenerator):
        """Validation holds sample A; the training RNG yields A first, then B."""

        def _draw(self, skill_index: int, rng: np.random.Generator) -> Sample:
            return Sample("lego_1", "p", str(int(rng.integers(0, 2))))

    generator = _TwoSamples(num_variables=1, num_validation_samples=1)
    held_out = generator.validation_set(0, 1)[0]
    for index in range(50):
        assert generator.sample_by_index(0, index, seed=0) != held_out


def test_vocabulary_covers_every_word() -> None:
    for name in ("lego", "addition"):
        generator = get_skill_generator(name)
        vocabulary = set(generator.vocabulary())
        for skill_index in range(generator.num_skills):
            for sample in generator.generate(skill_index, 100, seed=2):
                words = re.findall(r"\w+|[^\w\s]", sample.text)
                assert set(words) <= vocabulary


def test_bad_inputs_raise_value_error_naming_the_value() -> None:
    with pytest.raises(ValueError, match="'tree'.*addition.*lego"):
        get_skill_generator("tree")
    generator = get_skill_generator("lego", num_variables=3)
    assert generator.skill_names == ["lego_1", "lego_2", "lego_3"]
    for bad in (3, -1):
        with pytest.raises(ValueError, match=f"skill_index={bad}"):
            generator.sample_by_index(bad, 0, seed=0)
        with pytest.raises(ValueError, match=f"skill_index={bad}"):
            generator.validation_set(bad)
    with pytest.raises(ValueError, match="num_samples=101"):
        generator.validation_set(0, 101)
    with pytest.raises(ValueError, match="-2"):
        generator.generate(0, 1, seed=-2)
    with pytest.raises(ValueError, match="not a LEGO sentence"):
        solve_lego("Input: A = 1 + 2")
    with pytest.raises(ValueError, match="not an addition sentence"):
        solve_addition(LEGO_EXAMPLE)
