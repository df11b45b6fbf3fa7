"""Named causal-LM sizes and a builder that never touches the network.

Place in the flow: generators -> tokenizer -> data streams -> **training/eval**: the train
loop and the skills-graph runs call `build_model` to get the language model they train.

The paper continually trains EleutherAI/gpt-neo-125M (and 1.3B for transfer runs). Those
shapes are listed here as configs; to start from the real weights, download them once and
pass the local directory as `pretrained_path`. The "tiny" and "small" GPT-2 shapes train
from scratch on CPU in seconds and are what the tests and smoke runs use.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

MODEL_SIZES: dict[str, dict[str, Any]] = {
    # Dropout 0 for the from-scratch sizes: synthetic data is infinite, nothing to regularize.
    "tiny": {
        "model_type": "gpt2", "n_layer": 2, "n_head": 4, "n_embd": 128,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
    },
    "small": {
        "model_type": "gpt2", "n_layer": 4, "n_head": 4, "n_embd": 256,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
    },
    # GPT-2 124M as released (openai-community/gpt2), dropout 0.1 included.
    "gpt2-124m": {"model_type": "gpt2", "n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024},
    # Same shapes as EleutherAI/gpt-neo-125M and gpt-neo-1.3B (alternating global/local attention).
    "gpt-neo-125m": {
        "model_type": "gpt_neo", "num_layers": 12, "hidden_size": 768, "num_heads": 12,
        "attention_types": [[["global", "local"], 6]], "window_size": 256,
        "max_position_embeddings": 2048,
        "embed_dropout": 0.0, "attention_dropout": 0.0, "resid_dropout": 0.0,
    },
    "gpt-neo-1.3b": {
        "model_type": "gpt_neo", "num_layers": 24, "hidden_size": 2048, "num_heads": 16,
        "attention_types": [[["global", "local"], 12]], "window_size": 256,
        "max_position_embeddings": 2048,
        "embed_dropout": 0.0, "attention_dropout": 0.0, "resid_dropout": 0.0,
    },
}  # fmt: skip
"""Config keyword arguments per named size; `model_type` picks the transformers family.
A size without a position-table entry gets one of length `max_sequence_length`."""

_POSITION_KEYS = ("n_positions", "max_position_embeddings")


def _attention_implementation(config: Any) -> str:
    model_class = AutoModelForCausalLM._model_mapping[type(config)]
    return "sdpa" if getattr(model_class, "_supports_sdpa", False) else "eager"


def _position_table_length(config: Any) -> int:
    for key in _POSITION_KEYS:
        if hasattr(config, key):
            return int(getattr(config, key))
    raise AssertionError(f"config of type {type(config).__name__} has no position table length")


def build_model(
    size: str,
    vocab_size: int,
    max_sequence_length: int,
    pretrained_path: str = "",
    overrides: dict[str, Any] | None = None,
) -> PreTrainedModel:
    """Build a causal LM from a named size, or load one from a local directory.

    Uses SDPA attention where the family supports it (GPT-2) and eager otherwise (GPT-Neo).
    Seed torch before calling for reproducible initial weights.

    Args:
        size: A key of `MODEL_SIZES`. Ignored for the architecture when
            `pretrained_path` is given (the checkpoint's config wins), but still checked.
        vocab_size: Number of token ids (`len(tokenizer)`).
        max_sequence_length: Longest sequence, in tokens, the model must accept.
        pretrained_path: Local directory from `save_pretrained`; "" builds fresh weights.
        overrides: Extra config keyword arguments applied over the named size (fresh
            builds only), e.g. `{"n_layer": 1}`.

    Returns:
        The model, in training mode, on CPU.

    Raises:
        ValueError: If `size` is unknown, `pretrained_path` does not exist, an override is
            not a field of the config, or the position table is shorter than
            `max_sequence_length`.
    """
    if size not in MODEL_SIZES:
        raise ValueError(f"unknown model size {size!r}; valid sizes: {sorted(MODEL_SIZES)}")
    if vocab_size < 1 or max_sequence_length < 1:
        message = f"vocab_size={vocab_size} and max_sequence_length={max_sequence_length} must be >= 1"
        raise ValueError(message)
    if pretrained_path:
        model = _load_pretrained(pretrained_path, vocab_size)
    else:
        options = copy.deepcopy(MODEL_SIZES[size])
        model_type = options.pop("model_type")
        if not any(key in options for key in _POSITION_KEYS):
            options["n_positions"] = max_sequence_length
        # Our tokenizers have no BOS and put <eos> at id 1; the GPT-2 defaults (50256) would
        # point outside a small vocabulary.
        options.update(vocab_size=vocab_size, bos_token_id=None, eos_token_id=None)
        config = AutoConfig.for_model(model_type, **options)
        for key, value in (overrides or {}).items():
            if not hasattr(config, key):
                raise ValueError(f"override {key!r} is not a field of {type(config).__name__}")
            setattr(config, key, value)
        attention = _attention_implementation(config)
        model = AutoModelForCausalLM.from_config(config, attn_implementation=attention)
    position_table_length = _position_table_length(model.config)
    if position_table_length < max_sequence_length:
        raise ValueError(
            f"max_sequence_length={max_sequence_length} exceeds the model's position table "
            f"({position_table_length}); lower it or pick another size"
        )
    model.train()
    return model


def _load_pretrained(pretrained_path: str, vocab_size: int) -> PreTrainedModel:
    path = Path(pretrained_path)
    if not (path / "config.json").is_file():
        message = f"pretrained_path {pretrained_path!r} is not a local model directory (no config.json)"
        raise ValueError(message)
    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        str(path), local_files_only=True, attn_implementation=_attention_implementation(config)
    )
    if model.config.vocab_size != vocab_size:
        warnings.warn(
            f"resizing token embeddings of {pretrained_path!r} from {model.config.vocab_size} "
            f"to vocab_size={vocab_size}; the new rows are freshly initialized",
            stacklevel=3,
        )
        model.resize_token_embeddings(vocab_size)
    return model


def count_parameters(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once).

    Args:
        model: Any torch module.

    Returns:
        Total element count over `model.parameters()`.
    """
    return sum(parameter.numel() for parameter in model.parameters())
