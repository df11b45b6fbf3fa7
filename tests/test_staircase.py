"""Staircase generator: answers match an independent solver, sentences are well formed, options are checked.

Run: `.venv/bin/python -m pytest tests/test_staircase.py`.
"""

import pytest

from skillit_ray.config.job import load_config
from skillit_ray.data.sources.registry import resolve_skills
from skillit_ray.skills.evaluate import encode_answer_queries
from skillit_ray.skills.registry import get_skill_generator
from skillit_ray.skills.staircase import VARIABLE_NAMES, solve_staircase
from skillit_ray.skills.tokenizer import build_tokenizer


def test_answers_match_the_solver_and_are_single_tokens():
    generator = get_skill_generator("staircase", num_skills=4, chain_length=10, negation_probability=0.25)
    tokenizer = build_tokenizer(generator.vocabulary())
    for skill_index in range(4):
        samples = generator.generate(skill_index, 50, seed=3)
        for sample in samples:
            assert sample.skill == f"staircase_{skill_index + 1}"
            assert solve_staircase(sample.text)[VARIABLE_NAMES[skill_index]] == int(sample.answer)
            assert len(sample.prompt.split(". Output:")[0].split()) == 1 + 10  # "Input:" + chain
        encode_answer_queries(tokenizer, samples)  # raises unless each answer is one token after its prompt
        assert len(tokenizer(samples[0].text)["input_ids"]) == 20


def test_training_streams_never_emit_validation_sentences():
    generator = get_skill_generator("staircase", num_skills=2, chain_length=8, num_validation_samples=100)
    held_out = {sample.text for sample in generator.validation_set(1, 100)}
    assert len(held_out) == 100
    assert not held_out & {sample.text for sample in generator.generate(1, 500, seed=0)}


def test_negation_probability_sets_agreement_with_the_parent():
    generator = get_skill_generator("staircase", num_skills=2, chain_length=12, negation_probability=0.25)
    samples = generator.generate(1, 2000, seed=1)
    agreement = sum(solve_staircase(s.text)["a"] == int(s.answer) for s in samples) / len(samples)
    assert agreement == pytest.approx(0.75, abs=0.04)


@pytest.mark.parametrize(
    "options", [{"num_skills": 5, "chain_length": 4}, {"negation_probability": 0.0}, {"negation_probability": 0.6}]
)
def test_bad_options_are_rejected(options):
    with pytest.raises(ValueError):
        get_skill_generator("staircase", **options)


def test_config_selects_the_staircase_source():
    config = load_config(
        None,
        ["data.source=staircase", "data.staircase.num_skills=3", "data.staircase.chain_length=6",
         "data.num_val_per_skill=20"],
    )  # fmt: skip
    setup = resolve_skills(config)
    assert setup.train_skills == ["staircase_1", "staircase_2", "staircase_3"]
    assert setup.generator_options == {
        "num_skills": 3, "chain_length": 6, "negation_probability": 0.25, "num_validation_samples": 20,
    }  # fmt: skip


def test_the_demo_configs_are_valid_and_refuse_an_existing_output(tmp_path):
    from skillit_ray.tune.demo import DEMO_RUNS, DEMO_SETTINGS, run_demo

    for extra in DEMO_RUNS.values():
        config = load_config(None, [*DEMO_SETTINGS, *extra, "mixture.graph_path=graph.json"])
        assert config.data.source == "staircase" and config.train.steps == 800
    (tmp_path / "skillit").mkdir()
    with pytest.raises(ValueError, match="exists from an earlier demo"):
        run_demo(str(tmp_path))  # refused before Ray starts: nothing already written is overwritten


def test_the_demo_seed_table_pairs_every_strategy_with_stratified_by_seed():
    from skillit_ray.tune.demo import seed_table

    accuracy = {("skillit", 0): [1.0, 0.8], ("skillit", 1): [1.0, 1.0], ("stratified", 0): [0.5, 0.5],
                ("stratified", 1): [1.0, 0.6]}  # fmt: skip
    lines = seed_table(accuracy).splitlines()
    assert lines[1].split() == ["strategy", "seed", "0", "seed", "1", "mean", "+/-", "std", "minus", "stratified"]
    # skillit: 90 and 100 (mean 95.0, std 7.1); paired differences +40 and +20 (mean +30.0, std 14.1)
    assert lines[3].split() == ["skillit", "90.0", "100.0", "95.0", "+/-", "7.1", "+30.0", "+/-", "14.1"]
    assert lines[4].split() == ["stratified", "50.0", "80.0", "65.0", "+/-", "21.2"]
