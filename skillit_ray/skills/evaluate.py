"""Per-sample answer-token loss and greedy accuracy for the synthetic skills.

Place in the flow: generators -> tokenizer -> data streams -> training/**eval**. The
training loop and the skills-graph runs call these on each skill's fixed validation set
and average per skill.

What is measured (reference section 4.1 and item 7.1):

- loss: cross-entropy of the single answer token given the prompt. The official code finds
  that position by diffing the sentence against its label-flipped twin; with our
  word-level tokenizer the answer is the token right after the prompt.
- accuracy: the official code greedily generates 3 (LEGO) or 5 (addition) tokens and
  reads the first character after "= val " / "Output: ". Because every answer is one
  token and greedy decoding is deterministic, that first generated token decides the
  result, so we compare the argmax of the next-token logits with the answer token.

Losses are returned per sample and never filtered; the official `keep = losses != 0`
averaging (item 7.8) would drop a perfectly predicted sample and can divide by zero.

Batches are right-padded: each prompt's tokens sit at positions 0..n-1 exactly as when it
is run alone, and the logits are read at each row's last real position, so batched and
one-at-a-time results agree (up to float rounding).
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from skillit_ray.skills.base import Sample


def encode_answer_queries(
    tokenizer: PreTrainedTokenizerBase, samples: Sequence[Sample]
) -> tuple[list[list[int]], list[int]]:
    """Tokenize prompts and answers, checking that each answer is one token after its prompt.

    Args:
        tokenizer: Tokenizer from `build_tokenizer`.
        samples: Samples to encode.

    Returns:
        `(prompt_token_ids, answer_token_ids)`, one entry per sample.

    Raises:
        ValueError: If a prompt is not a token prefix of its text, or the answer is not
            exactly one known token.
    """
    prompt_token_ids: list[list[int]] = []
    answer_token_ids: list[int] = []
    for sample in samples:
        prompt_ids = tokenizer(sample.prompt, add_special_tokens=False)["input_ids"]
        text_ids = tokenizer(sample.text, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(sample.answer, add_special_tokens=False)["input_ids"]
        if (
            len(answer_ids) != 1
            or answer_ids[0] == tokenizer.unk_token_id
            or text_ids[: len(prompt_ids) + 1] != prompt_ids + answer_ids
        ):
            raise ValueError(
                f"answer {sample.answer!r} of {sample.text!r} is not a single known token "
                "following the prompt tokens; use the tokenizer from build_tokenizer"
            )
        prompt_token_ids.append(prompt_ids)
        answer_token_ids.append(answer_ids[0])
    return prompt_token_ids, answer_token_ids


@torch.no_grad()
def _answer_logits(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    samples: Sequence[Sample],
    device: torch.device | str,
    batch_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return float32 next-token logits after each prompt (N, V) and the answer ids (N,)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    prompt_token_ids, answer_token_ids = encode_answer_queries(tokenizer, samples)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    was_training = model.training
    model.eval()
    logits_chunks: list[torch.Tensor] = []
    try:
        for start in range(0, len(prompt_token_ids), batch_size):
            chunk = prompt_token_ids[start : start + batch_size]
            lengths = torch.tensor([len(ids) for ids in chunk])
            max_length = int(lengths.max())
            input_ids = torch.full((len(chunk), max_length), pad_id, dtype=torch.long)
            for row, ids in enumerate(chunk):
                input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask = (torch.arange(max_length)[None, :] < lengths[:, None]).long()
            position_ids = torch.arange(max_length).expand(len(chunk), max_length)
            outputs = model(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                position_ids=position_ids.to(device),
            )
            last_positions = (lengths - 1).to(device)
            rows = torch.arange(len(chunk), device=device)
            logits_chunks.append(outputs.logits[rows, last_positions].float().cpu())
    finally:
        model.train(was_training)
    if not logits_chunks:
        return torch.zeros((0, 0)), torch.zeros((0,), dtype=torch.long)
    return torch.cat(logits_chunks), torch.tensor(answer_token_ids, dtype=torch.long)


def answer_losses_and_correct(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    samples: Sequence[Sample],
    device: torch.device | str,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample answer-token loss (float64) and greedy correctness (int64) from one forward pass.

    The evaluation loop needs both; `answer_token_losses` and `greedy_accuracy` return one each.
    """
    logits, answer_ids = _answer_logits(model, tokenizer, samples, device, batch_size)
    if len(answer_ids) == 0:
        return np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64)
    log_probabilities = torch.log_softmax(logits.float(), dim=-1)
    losses = -log_probabilities.gather(1, answer_ids[:, None]).squeeze(1)
    return losses.double().numpy(), (logits.argmax(dim=-1) == answer_ids).long().numpy()


def answer_token_losses(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    samples: Sequence[Sample],
    device: torch.device | str,
    batch_size: int = 64,
) -> np.ndarray:
    """Per-sample cross-entropy (nats) of the answer token given the prompt.

    Args:
        model: Causal LM already on `device`; called as `model(input_ids=...,
            attention_mask=..., position_ids=...)` and must return an object with
            `.logits` of shape (batch, length, vocab).
        tokenizer: Tokenizer from `build_tokenizer`.
        samples: Samples to score (any mix of skills and prompt lengths).
        device: Device the model lives on.
        batch_size: Prompts per forward pass.

    Returns:
        float64 array of shape (len(samples),). Zeros are kept.
    """
    return answer_losses_and_correct(model, tokenizer, samples, device, batch_size)[0]


def greedy_accuracy(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    samples: Sequence[Sample],
    device: torch.device | str,
    batch_size: int = 64,
) -> np.ndarray:
    """Per-sample 0/1 correctness of the greedy next token after the prompt.

    Equivalent to the official greedy-decode-then-parse for single-token answers (see the
    module docstring). Ties in the argmax go to the lowest token id.

    Args:
        model: Causal LM, as in `answer_token_losses`.
        tokenizer: Tokenizer from `build_tokenizer`.
        samples: Samples to score.
        device: Device the model lives on.
        batch_size: Prompts per forward pass.

    Returns:
        int64 array of shape (len(samples),) holding 1 where the prediction is right.
    """
    return answer_losses_and_correct(model, tokenizer, samples, device, batch_size)[1]


def parse_prediction(generated_text: str) -> int:
    """Parse a generated continuation the way the official evaluators do.

    Args:
        generated_text: Text generated after the prompt, e.g. " 1, " or "7".

    Returns:
        The first character after stripping whitespace and punctuation, as an int, or -1
        if it is missing or not a digit (the official code's "wrong" marker).
    """
    stripped = generated_text.strip().strip(string.punctuation)
    if not stripped or not stripped[0].isdigit():
        return -1
    return int(stripped[0])


def score_predictions(predicted: list[str], answers: list[str]) -> float:
    """Fraction of generated continuations whose parsed digit equals the answer.

    Args:
        predicted: Generated continuations, parsed with `parse_prediction`.
        answers: Reference answers (digit strings), same length.

    Returns:
        Accuracy in [0, 1]; a non-numeric prediction counts as wrong.

    Raises:
        ValueError: If the lists are empty or differ in length.
    """
    if len(predicted) != len(answers) or not answers:
        raise ValueError(
            f"need equally long, non-empty lists; got {len(predicted)} predictions and {len(answers)} answers"
        )
    correct = [parse_prediction(text) == int(answer) for text, answer in zip(predicted, answers, strict=True)]
    return float(np.mean(correct))
