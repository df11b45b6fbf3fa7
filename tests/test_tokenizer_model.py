"""Tests for the word-level tokenizer, the answer-token evaluators and the model builder.

Run: `python -m pytest tests/test_tokenizer_model.py -q`
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import PreTrainedTokenizerFast

from skillit_ray.skills.addition import AdditionGenerator
from skillit_ray.skills.base import Sample
from skillit_ray.skills.evaluate import answer_token_losses, greedy_accuracy, parse_prediction, score_predictions
from skillit_ray.skills.lego import LegoGenerator
from skillit_ray.skills.registry import get_skill_generator
from skillit_ray.skills.tokenizer import build_tokenizer, load_tokenizer, save_tokenizer
from skillit_ray.train.model import MODEL_SIZES, build_model, count_parameters

MAX_SEQUENCE_LENGTH = 64


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    return build_tokenizer(LegoGenerator().vocabulary() + AdditionGenerator().vocabulary())


def _mixed_samples() -> list[Sample]:
    lego = LegoGenerator()
    addition = AdditionGenerator()
    samples = [lego.sample_by_index(skill, index, seed=0) for skill in range(5) for index in range(3)]
    samples += [addition.sample_by_index(skill, index, seed=0) for skill in range(3) for index in range(3)]
    return samples


class _LookupModel(torch.nn.Module):
    """Stub LM whose next-token logits depend only on the current token: logits = table[id]."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(table.clone(), requires_grad=False)

    def forward(self, input_ids: torch.Tensor, **unused: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=self.table[input_ids])


# ---------------------------------------------------------------- tokenizer


def test_special_tokens_and_deterministic_ids(tokenizer: PreTrainedTokenizerFast) -> None:
    assert (tokenizer.pad_token, tokenizer.eos_token, tokenizer.unk_token) == ("<pad>", "<eos>", "<unk>")
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    words = sorted(set(LegoGenerator().vocabulary() + AdditionGenerator().vocabulary()))
    assert len(tokenizer) == 3 + len(words)
    assert [tokenizer.convert_tokens_to_ids(word) for word in words] == list(range(3, 3 + len(words)))
    shuffled = build_tokenizer(list(reversed(words)) + words)
    assert shuffled.get_vocab() == tokenizer.get_vocab()
    assert tokenizer("1, val.", add_special_tokens=False)["input_ids"] == [
        tokenizer.convert_tokens_to_ids(token) for token in ["1", ",", "val", "."]
    ]


@pytest.mark.parametrize("name", ["lego", "addition"])
def test_prompt_prefix_and_single_token_answer(tokenizer: PreTrainedTokenizerFast, name: str) -> None:
    generator = get_skill_generator(name)
    for skill_index in range(generator.num_skills):
        samples = generator.generate(skill_index, 200, seed=1) + generator.validation_set(skill_index)
        for sample in samples:
            prompt_ids = tokenizer(sample.prompt, add_special_tokens=False)["input_ids"]
            text_ids = tokenizer(sample.text, add_special_tokens=False)["input_ids"]
            answer_ids = tokenizer(sample.answer, add_special_tokens=False)["input_ids"]
            assert len(answer_ids) == 1
            assert text_ids[: len(prompt_ids) + 1] == prompt_ids + answer_ids
            assert tokenizer.unk_token_id not in text_ids
            assert len(text_ids) <= MAX_SEQUENCE_LENGTH


def test_tokenizer_save_load_round_trip(tokenizer: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    save_tokenizer(tokenizer, tmp_path / "tokenizer")
    loaded = load_tokenizer(tmp_path / "tokenizer")
    assert loaded.get_vocab() == tokenizer.get_vocab()
    assert (loaded.pad_token_id, loaded.eos_token_id) == (0, 1)
    for sample in _mixed_samples():
        assert loaded(sample.text)["input_ids"] == tokenizer(sample.text)["input_ids"]
    with pytest.raises(ValueError, match="missing_dir"):
        load_tokenizer(tmp_path / "missing_dir")


def test_token_ids_are_the_tokenizers_own_ids_for_word_level_and_bpe(tokenizer: PreTrainedTokenizerFast) -> None:
    from skillit_ray.data.tokenizer import train_bpe_tokenizer
    from skillit_ray.data.tokens import token_ids

    lego, addition = LegoGenerator(), AdditionGenerator()
    synthetic = [lego.sample_by_index(index % 5, index, seed=1).text for index in range(300)]
    synthetic += [addition.sample_by_index(index % 3, index, seed=1).text for index in range(300)]
    synthetic += ["", "Input: ü = val 1 <eos> zz", "  \t 1,2 ;; <pad>"]  # unknown words, specials, odd spacing
    assert token_ids(tokenizer, synthetic) == tokenizer(synthetic, add_special_tokens=False)["input_ids"]

    words = ["the", "model", "naïve", "数据", "don't", "<eos>", "🙂", "  ", "\n", "x" * 30]
    generator = np.random.default_rng(0)
    texts = [" ".join(generator.choice(words, size=generator.integers(0, 60))) for _ in range(200)]
    bpe = train_bpe_tokenizer(texts, 400)
    expected = bpe(texts, add_special_tokens=False)["input_ids"]
    assert token_ids(bpe, texts) == expected
    bpe.backend_tokenizer.enable_truncation(8)  # set on the backend: the tokenizer's own call switches it off
    assert token_ids(bpe, texts) == expected


def test_build_tokenizer_rejects_words_that_would_be_split() -> None:
    with pytest.raises(ValueError, match="'a,b'"):
        build_tokenizer(["a,b"])
    with pytest.raises(ValueError, match="empty"):
        build_tokenizer([])


# ---------------------------------------------------------------- evaluators


def test_losses_and_accuracy_match_hand_computed_values(tokenizer: PreTrainedTokenizerFast) -> None:
    vocabulary_size = len(tokenizer)
    val_id = tokenizer.convert_tokens_to_ids("val")
    one_id = tokenizer.convert_tokens_to_ids("1")
    zero_id = tokenizer.convert_tokens_to_ids("0")
    table = torch.zeros(vocabulary_size, vocabulary_size)
    table[val_id, one_id] = 2.0  # after "val": P(1) = e^2 / (e^2 + V - 1)
    samples = [
        Sample("lego_1", "Input: a = val 1. Output: a = val ", "1", ", "),
        Sample("lego_1", "Input: a = val 0. Output: a = val ", "0", ", "),
    ]
    losses = answer_token_losses(_LookupModel(table), tokenizer, samples, device="cpu")
    normalizer = math.exp(2.0) + vocabulary_size - 1
    expected = [-(2.0 - math.log(normalizer)), math.log(normalizer)]
    np.testing.assert_allclose(losses, expected, rtol=1e-6)
    accuracy = greedy_accuracy(_LookupModel(table), tokenizer, samples, device="cpu")
    assert accuracy.tolist() == [1, 0]
    # A certain, correct prediction has loss exactly 0 and is kept, not dropped or NaN.
    table[val_id, zero_id] = 1e4
    losses = answer_token_losses(_LookupModel(table), tokenizer, samples, device="cpu")
    assert losses.shape == (2,) and losses[1] == 0.0 and losses[0] > 1e3
    assert greedy_accuracy(_LookupModel(table), tokenizer, samples, device="cpu").tolist() == [0, 1]


def test_evaluators_use_each_prompts_own_last_token(tokenizer: PreTrainedTokenizerFast) -> None:
    # Addition prompts end with ":" and LEGO prompts with "val"; give each its own answer.
    table = torch.zeros(len(tokenizer), len(tokenizer))
    table[tokenizer.convert_tokens_to_ids(":"), tokenizer.convert_tokens_to_ids("7")] = 5.0
    table[tokenizer.convert_tokens_to_ids("val"), tokenizer.convert_tokens_to_ids("0")] = 5.0
    samples = _mixed_samples()
    wanted = {"addition": "7", "lego": "0"}
    expected = [int(sample.answer == wanted[sample.skill.split("_")[0]]) for sample in samples]
    accuracy = greedy_accuracy(_LookupModel(table), tokenizer, samples, device="cpu", batch_size=4)
    assert accuracy.tolist() == expected


def test_batched_equals_one_at_a_time_on_a_real_model(tokenizer: PreTrainedTokenizerFast) -> None:
    torch.manual_seed(0)
    model = build_model("tiny", len(tokenizer), MAX_SEQUENCE_LENGTH)
    samples = _mixed_samples()  # prompt lengths differ between LEGO and addition
    batched = answer_token_losses(model, tokenizer, samples, device="cpu", batch_size=64)
    single = np.array([answer_token_losses(model, tokenizer, [sample], "cpu")[0] for sample in samples])
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-6)
    chunked = answer_token_losses(model, tokenizer, samples, device="cpu", batch_size=5)
    np.testing.assert_allclose(chunked, single, rtol=1e-5, atol=1e-6)
    accuracy_batched = greedy_accuracy(model, tokenizer, samples, device="cpu", batch_size=64)
    accuracy_single = [greedy_accuracy(model, tokenizer, [sample], "cpu")[0] for sample in samples]
    assert accuracy_batched.tolist() == accuracy_single
    assert model.training  # evaluation restores the caller's mode


def test_evaluator_rejects_multi_token_answers(tokenizer: PreTrainedTokenizerFast) -> None:
    bad = Sample("addition_1", "Input: A = 1 + 2 , A 0 = ? Output: ", "1 2")
    with pytest.raises(ValueError, match="'1 2'"):
        model = _LookupModel(torch.zeros(len(tokenizer), len(tokenizer)))
        answer_token_losses(model, tokenizer, [bad], "cpu")


def test_score_predictions_on_hand_made_outputs() -> None:
    assert parse_prediction(" 1, ") == 1
    assert parse_prediction("7") == 7
    assert parse_prediction(" , x") == -1
    assert parse_prediction("") == -1
    assert score_predictions([" 1, ", "0", "x", "", "3 4"], ["1", "1", "0", "0", "3"]) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="2 predictions and 1 answers"):
        score_predictions(["1", "0"], ["1"])


# ---------------------------------------------------------------- model


def test_tiny_model_forward_backward_and_reload(tokenizer: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("tiny", len(tokenizer), MAX_SEQUENCE_LENGTH)
    assert model.config.n_positions == MAX_SEQUENCE_LENGTH
    assert model.config._attn_implementation == "sdpa"
    assert 0 < count_parameters(model) < 1_000_000
    input_ids = torch.tensor([tokenizer(sample.text)["input_ids"] for sample in _mixed_samples()[:4]])
    output = model(input_ids=input_ids, labels=input_ids)
    output.loss.backward()
    assert torch.isfinite(output.loss)
    assert all(parameter.grad is not None for parameter in model.parameters())

    model.save_pretrained(tmp_path / "tiny")
    saved_path = str(tmp_path / "tiny")
    reloaded = build_model("tiny", len(tokenizer), MAX_SEQUENCE_LENGTH, pretrained_path=saved_path)
    model.eval()
    reloaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=input_ids).logits, model(input_ids=input_ids).logits)


def test_model_overrides_and_named_sizes() -> None:
    model = build_model("tiny", 40, 32, overrides={"n_layer": 1})
    assert model.config.n_layer == 1 and model.config.vocab_size == 40
    assert set(MODEL_SIZES) == {"tiny", "small", "gpt2-124m", "gpt-neo-125m", "gpt-neo-1.3b"}
    neo = MODEL_SIZES["gpt-neo-125m"]
    assert (neo["num_layers"], neo["hidden_size"], neo["num_heads"]) == (12, 768, 12)
    assert neo["attention_types"] == [[["global", "local"], 6]] and neo["max_position_embeddings"] == 2048


def test_model_bad_inputs_raise_value_error_naming_the_value(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'huge'.*gpt-neo-125m"):
        build_model("huge", 40, 32)
    missing = str(tmp_path / "no_such_model")
    with pytest.raises(ValueError, match="no_such_model"):
        build_model("tiny", 40, 32, pretrained_path=missing)
    with pytest.raises(ValueError, match="'not_a_field'"):
        build_model("tiny", 40, 32, overrides={"not_a_field": 1})
    with pytest.raises(ValueError, match="max_sequence_length=2048"):
        build_model("tiny", 40, 2048, overrides={"n_positions": 16})
