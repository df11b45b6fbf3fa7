"""Named causal-LM sizes and a builder that never touches the network.

Place in the flow: generators -> tokenizer -> data streams -> **training/eval**: the train
loop and the skills-graph runs call `build_model` to get the language model they train, and every
loss of the system comes from `next_token_losses` (training, per-skill evaluation, curriculum scores,
the benchmark's plain loop).

The paper continually trains EleutherAI/gpt-neo-125M (and 1.3B for transfer runs). Those
shapes are listed here as configs; to start from real weights, name the model by hub id or
directory (`model.name_or_path`: `data/hub.py` finds or fetches its files, this module loads them
from the local directory). The "tiny" and "small" GPT-2 shapes train from scratch on CPU in
seconds and are what the tests and smoke runs use.
"""

from __future__ import annotations

import contextlib
import copy
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
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

ARCHITECTURE_KEYS: dict[str, dict[str, str]] = {
    "gpt2": {"layers": "n_layer", "heads": "n_head", "width": "n_embd", "positions": "n_positions"},
    "gpt_neo": {
        "layers": "num_layers", "heads": "num_heads", "width": "hidden_size", "positions": "max_position_embeddings",
    },
    "llama": {
        "layers": "num_hidden_layers", "heads": "num_attention_heads", "width": "hidden_size",
        "positions": "max_position_embeddings",
    },
}  # fmt: skip
"""Architectures a named size can be built as (`model.overrides={model_type: ...}`) and the config
keys that hold their shape; the named size gives layers, heads and width."""


def _architecture_options(model_type: str, layers: int, heads: int, width: int) -> dict[str, Any]:
    """Config keyword arguments for `model_type` with this shape, dropout 0 (from-scratch training)."""
    keys = ARCHITECTURE_KEYS[model_type]
    options: dict[str, Any] = {keys["layers"]: layers, keys["heads"]: heads, keys["width"]: width}
    if model_type == "gpt2":
        options.update(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    elif model_type == "gpt_neo":
        pattern = [[["global", "local"], layers // 2]] if layers % 2 == 0 else [[["global"], layers]]
        options.update(attention_types=pattern, embed_dropout=0.0, attention_dropout=0.0, resid_dropout=0.0)
    else:  # llama: rotary positions, SwiGLU MLP of the GPT-2 width ratio, one key/value head per head
        options.update(intermediate_size=4 * width, num_key_value_heads=heads, attention_dropout=0.0)
    return options


def _named_size_options(size: str, model_type_override: str | None) -> tuple[str, dict[str, Any]]:
    """(model type, config options) of a named size, built as another architecture when asked."""
    options = copy.deepcopy(MODEL_SIZES[size])
    model_type = options.pop("model_type")
    requested = model_type_override or model_type
    if requested not in ARCHITECTURE_KEYS:
        raise ValueError(
            f"model.overrides.model_type={requested!r} is not an architecture a named size can be built as; "
            f"choose one of {', '.join(ARCHITECTURE_KEYS)}"
        )
    if requested != model_type:
        keys = ARCHITECTURE_KEYS[model_type]
        shape = (options[keys["layers"]], options[keys["heads"]], options[keys["width"]])
        options = _architecture_options(requested, *shape)
    return requested, options


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
    on_meta_device: bool = False,
) -> PreTrainedModel:
    """Build a causal LM from a named size, or load one from a local directory.

    Uses SDPA attention where the family supports it (GPT-2) and eager otherwise (GPT-Neo).
    Seed torch before calling for reproducible initial weights.

    Args:
        size: A key of `MODEL_SIZES`. Ignored for the architecture when
            `pretrained_path` is given (the checkpoint's config wins), but still checked.
            `overrides={"model_type": "llama"}` builds the size's shape as another architecture
            (one of `ARCHITECTURE_KEYS`).
        on_meta_device: Build the same model with no storage (the meta device) and read no weights: a
            sharded run's ranks other than 0, which receive rank 0's weights after sharding
            (`parallel.load_from_rank0`).
        vocab_size: Number of token ids (`len(tokenizer)`).
        max_sequence_length: Longest sequence, in tokens, the model must accept.
        pretrained_path: Local directory from `save_pretrained`; "" builds fresh weights.
        overrides: Extra config keyword arguments applied over the named size (fresh
            builds only: with `pretrained_path` they are an error), e.g. `{"n_layer": 1}`.

    Returns:
        The model, in training mode, on CPU.

    Raises:
        ValueError: If `size` is unknown, `pretrained_path` does not exist or comes with
            overrides, an override is not a field of the config, the architecture is not one of
            `ARCHITECTURE_KEYS`, or the position table is shorter than `max_sequence_length`.
    """
    if size not in MODEL_SIZES:
        raise ValueError(f"unknown model size {size!r}; valid sizes: {sorted(MODEL_SIZES)}")
    if vocab_size < 1 or max_sequence_length < 1:
        message = f"vocab_size={vocab_size} and max_sequence_length={max_sequence_length} must be >= 1"
        raise ValueError(message)
    overrides = dict(overrides or {})
    if pretrained_path:
        if overrides:
            raise ValueError(
                f"model overrides {overrides} cannot apply to pretrained_path={pretrained_path!r}: its config.json "
                "wins; remove the overrides or the pretrained path"
            )
        model = _load_pretrained(pretrained_path, vocab_size, on_meta_device)
    else:
        model_type, options = _named_size_options(size, overrides.pop("model_type", None))
        if not any(key in options for key in _POSITION_KEYS):
            options[ARCHITECTURE_KEYS[model_type]["positions"]] = max_sequence_length
        # Our tokenizers have no BOS and put <eos> at id 1; the GPT-2 defaults (50256) would
        # point outside a small vocabulary.
        options.update(vocab_size=vocab_size, bos_token_id=None, eos_token_id=None)
        config = AutoConfig.for_model(model_type, **options)
        for key, value in overrides.items():
            if not hasattr(config, key):
                raise ValueError(f"override {key!r} is not a field of {type(config).__name__}")
            setattr(config, key, value)
        for role, key in ARCHITECTURE_KEYS[model_type].items():
            value = getattr(config, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"model {role} ({key}={value!r}) must be a positive integer; fix model.overrides")
        with torch.device("meta") if on_meta_device else contextlib.nullcontext():
            model = AutoModelForCausalLM.from_config(config, attn_implementation=_attention_implementation(config))
    position_table_length = _position_table_length(model.config)
    if position_table_length < max_sequence_length:
        raise ValueError(
            f"max_sequence_length={max_sequence_length} exceeds the model's position table "
            f"({position_table_length}); lower it or pick another size"
        )
    model.train()
    return model


MAX_ADDED_TOKENS = 16
"""A tokenizer may add up to this many tokens to a pretrained model's vocabulary (a pad token, say);
the embedding grows by fresh rows. More means the tokenizer is not the model's, and is refused."""


def model_limits(size: str, pretrained_path: str, overrides: dict[str, Any]) -> tuple[int | None, int | None]:
    """(position table length, vocabulary size) the configured model will have; None where it follows the data."""
    if pretrained_path:
        path = Path(pretrained_path) / "config.json"
        if not path.is_file():
            raise ValueError(f"model.pretrained_path={pretrained_path!r} has no config.json (not a saved model)")
        config = json.loads(path.read_text())
        positions = next((config[key] for key in _POSITION_KEYS if key in config), None)
        return positions, config.get("vocab_size")
    if size not in MODEL_SIZES:
        raise ValueError(f"model.size={size!r} is unknown; valid sizes: {sorted(MODEL_SIZES)}")
    options = {**MODEL_SIZES[size], **overrides}
    positions = next((options[key] for key in _POSITION_KEYS if key in options), None)
    return positions, overrides.get("vocab_size")


WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
"""A saved model directory holds one of these (`save_pretrained`)."""


def check_pretrained_directory(pretrained_path: str) -> None:
    """A local `save_pretrained` directory: config.json and a weights file; errors name what is missing."""
    path = Path(pretrained_path)
    if not path.is_dir():
        raise ValueError(f"model.pretrained_path={pretrained_path!r} is not a directory; save the model there first")
    if not (path / "config.json").is_file():
        raise ValueError(f"pretrained_path {pretrained_path!r} is not a local model directory (no config.json)")
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        found = sorted(item.name for item in path.iterdir())[:8]
        raise ValueError(
            f"model.pretrained_path={pretrained_path!r} has a config.json but no weights ({', '.join(WEIGHT_FILES)}); "
            f"found {found}: save the model with save_pretrained"
        )


def _load_pretrained(pretrained_path: str, vocab_size: int, on_meta_device: bool = False) -> PreTrainedModel:
    check_pretrained_directory(pretrained_path)
    path = Path(pretrained_path)
    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    if on_meta_device:  # the architecture only; rank 0 reads the weights and sends each rank its shards
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(
                config, attn_implementation=_attention_implementation(config), dtype=torch.float32
            )
        if model.config.vocab_size < vocab_size:  # rank 0 checks the size and warns
            model.resize_token_embeddings(vocab_size, mean_resizing=False)
        return model
    model = AutoModelForCausalLM.from_pretrained(  # fp32 master weights (bf16 only inside autocast)
        str(path), local_files_only=True, attn_implementation=_attention_implementation(config), dtype=torch.float32
    )
    if model.config.vocab_size < vocab_size:
        if vocab_size - model.config.vocab_size > MAX_ADDED_TOKENS:
            raise ValueError(
                f"pretrained_path {pretrained_path!r} has vocab_size={model.config.vocab_size} but the tokenizer has "
                f"{vocab_size} tokens: it is not the model's tokenizer; use the tokenizer saved with the model"
            )
        warnings.warn(
            f"growing token embeddings of {pretrained_path!r} from {model.config.vocab_size} to {vocab_size} "
            "(tokens the tokenizer added, e.g. a pad token); the new rows are freshly initialized",
            stacklevel=3,
        )
        model.resize_token_embeddings(vocab_size)
    return model


IGNORED_LABEL = -100
"""Label of positions that carry no loss (padding), as torch's cross-entropy `ignore_index`."""


def next_token_losses(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "none") -> torch.Tensor:
    """Cross-entropy of each next token: logits at position t score labels at t + 1 (float32).

    The one token loss of the system: training (summed over the batch), per-skill evaluation and
    curriculum scoring (per position), and the benchmark's plain loop all call it.

    Args:
        logits: (batch, length, vocabulary) model outputs.
        labels: (batch, length) token ids, `IGNORED_LABEL` where a position has no loss.
        reduction: "none" gives (batch, length - 1) losses, 0 at ignored positions; "sum" and
            "mean" reduce over the real positions.

    Returns:
        The losses as a float32 tensor on the logits' device.
    """
    if reduction != "none":
        return _shifted_cross_entropy(logits, labels, reduction)
    # a few rows at a time: their float32 copy stays in cache (6x faster on CPU than one call over
    # the whole batch transposed to (batch, vocabulary, length))
    chunks = [
        _shifted_cross_entropy(logits[start : start + ROWS_PER_LOSS], labels[start : start + ROWS_PER_LOSS], "none")
        for start in range(0, logits.size(0), ROWS_PER_LOSS)
    ]
    return torch.cat(chunks) if chunks else torch.zeros((0, max(0, logits.size(1) - 1)), device=logits.device)


def _shifted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, reduction: str) -> torch.Tensor:
    """Float32 cross-entropy of logits at t against labels at t + 1, over flat (positions, vocabulary)."""
    shifted_labels = labels[:, 1:]
    losses = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.size(-1)),
        shifted_labels.reshape(-1),
        ignore_index=IGNORED_LABEL,
        reduction=reduction,
    )
    return losses.view(shifted_labels.shape) if reduction == "none" else losses


ROWS_PER_LOSS = 16
"""Rows whose per-position losses `next_token_losses` computes at once (bounds the float32 logits copy)."""


def labels_for(input_ids: np.ndarray, pad_id: int) -> np.ndarray:
    """Causal-LM labels: the inputs with padding masked (`next_token_losses` shifts them)."""
    labels = input_ids.astype(np.int64).copy()
    labels[input_ids == pad_id] = IGNORED_LABEL
    return labels


SEQUENCES_PER_FORWARD = 64
"""Token rows per forward pass when scoring whole sequences."""


@torch.no_grad()
def sequence_losses(
    model, token_rows: np.ndarray, pad_id: int, device, autocast_bf16: bool = False, loss_mask: np.ndarray | None = None
) -> np.ndarray:
    """Mean next-token loss over the real tokens of each row (float64, one per row): text validation
    loss and the curriculum's text scores. With `loss_mask` (True at scored positions, e.g. answer
    tokens) only those tokens count, and a row without any is NaN."""
    losses = []
    for start in range(0, len(token_rows), SEQUENCES_PER_FORWARD):
        rows = token_rows[start : start + SEQUENCES_PER_FORWARD]
        labels = labels_for(rows, pad_id)
        if loss_mask is not None:
            labels[~loss_mask[start : start + SEQUENCES_PER_FORWARD]] = IGNORED_LABEL
        labels = torch.as_tensor(labels).to(device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast_bf16):
            logits = model(input_ids=torch.as_tensor(rows, dtype=torch.long, device=device)).logits
        token_losses = next_token_losses(logits, labels)
        counts = (labels[:, 1:] != IGNORED_LABEL).sum(dim=1)
        means = (token_losses.sum(dim=1) / counts.clamp(min=1)).double()
        if loss_mask is not None:
            means[counts == 0] = float("nan")
        losses.append(means.cpu().numpy())
    return np.concatenate(losses) if losses else np.zeros(0)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once).

    Args:
        model: Any torch module.

    Returns:
        Total element count over `model.parameters()`.
    """
    return sum(parameter.numel() for parameter in model.parameters())
