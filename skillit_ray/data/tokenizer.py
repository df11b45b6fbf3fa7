"""Text tokenizers: train a byte-level BPE locally, convert a tokenizer.json, and check one against the data.

Role in the flow: prepare (train or convert, save in the `save_pretrained` format) -> sources (every
run checks its tokenizer before Ray starts). Nothing is downloaded. The checks, each an error that
names the path, the skill or the key and the fix:

* the path exists and is a directory (a `tokenizer.json` file is converted by `skillit-ray prepare`),
  and it loads;
* it has a pad token (padding and the loss mask need one; `prepare` adds `<pad>` when missing);
* its unknown-token rate on a sample of each skill is at most `data.max_unknown_token_rate` (a
  word-level LEGO tokenizer on prose maps most words to `<unk>` and trains on noise);
* the model's vocabulary is not smaller than the tokenizer's (ids past it have no embedding).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from transformers import PreTrainedTokenizerFast

PAD_TOKEN, EOS_TOKEN = "<pad>", "<eos>"
UNKNOWN_RATE_SAMPLE_ROWS = 200
"""Rows per skill whose tokens are checked for the unknown token before a run starts."""


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE of `vocab_size` tokens trained on `texts` (no unknown token: every byte is one)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < 300:
        raise ValueError(f"--tokenizer-vocab-size {vocab_size} is too small: byte-level BPE needs >= 300 (256 bytes)")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD_TOKEN, EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=PAD_TOKEN, eos_token=EOS_TOKEN)


def tokenizer_from_path(path: str) -> PreTrainedTokenizerFast:
    """A tokenizer directory or a `tokenizer.json` file, with a pad token and an EOS token added if missing."""
    source = Path(path)
    if source.is_file():
        tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(source))
    else:
        tokenizer = load_checked_tokenizer(path, "--tokenizer", require_pad=False)
    missing = {role: token for role, token in (("pad_token", PAD_TOKEN), ("eos_token", EOS_TOKEN))
               if getattr(tokenizer, role) is None}  # fmt: skip
    if missing:
        tokenizer.add_special_tokens(missing)
    return tokenizer


def load_checked_tokenizer(path: str, key: str = "data.tokenizer_path", require_pad: bool = True):
    """Load a local tokenizer directory; clear errors for a missing path, a file, an empty directory, no pad."""
    directory = Path(path)
    if not directory.exists():
        raise ValueError(f"{key}={path!r} does not exist; give a tokenizer directory (saved with save_pretrained)")
    if directory.is_file():
        raise ValueError(
            f"{key}={path!r} is a file, not a directory: give the directory that holds tokenizer.json, or convert "
            f"it once with `skillit-ray prepare table ... --tokenizer {path}` (writes DIR/tokenizer)"
        )
    if not (directory / "tokenizer.json").is_file():
        found = sorted(item.name for item in directory.iterdir())[:8]
        raise ValueError(
            f"{key}={path!r} holds no tokenizer.json (found {found or 'nothing'}); save a fast tokenizer there with "
            "save_pretrained or train one with `skillit-ray prepare table ... --tokenizer-vocab-size N`"
        )
    try:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError, json.JSONDecodeError) as error:
        raise ValueError(f"{key}={path!r} does not load as a tokenizer ({error}); re-save it") from None
    if require_pad and tokenizer.pad_token_id is None:
        raise ValueError(
            f"tokenizer {path!r} has no pad token: padding and the loss mask need one; add it "
            '(tokenizer.add_special_tokens({"pad_token": "<pad>"}) then save_pretrained) or re-run '
            "`skillit-ray prepare table ... --tokenizer PATH`, which adds one"
        )
    return tokenizer


def unknown_token_rate(tokenizer, texts: list[str]) -> float:
    """Share of the tokens of `texts` that are the unknown token (0 for tokenizers without one)."""
    if tokenizer.unk_token_id is None or not texts:
        return 0.0
    ids = [token for row in tokenizer(list(texts), add_special_tokens=False)["input_ids"] for token in row]
    return sum(token == tokenizer.unk_token_id for token in ids) / max(1, len(ids))


def check_unknown_rates(tokenizer, texts_by_skill: dict[str, list[str]], max_rate: float, where: str) -> None:
    """Refuse a tokenizer that maps more than `max_rate` of a skill's tokens to the unknown token."""
    for skill, texts in texts_by_skill.items():
        rate = unknown_token_rate(tokenizer, texts)
        if rate > max_rate:
            raise ValueError(
                f"tokenizer {where} maps {rate:.1%} of skill {skill!r}'s tokens to {tokenizer.unk_token!r} "
                f"(data.max_unknown_token_rate={max_rate:.1%}): it was not built for this text; train one on the "
                "data (`skillit-ray prepare table ... --tokenizer-vocab-size N`) or point data.tokenizer_path at it"
            )


def check_model_vocabulary(model_vocab_size: int | None, tokenizer, where: str, allowed_growth: int = 0) -> None:
    """Refuse a model whose vocabulary is smaller than the tokenizer's (by more than `allowed_growth`
    added tokens, which a pretrained model's embedding grows to hold)."""
    if model_vocab_size is not None and model_vocab_size + allowed_growth < len(tokenizer):
        raise ValueError(
            f"{where} has vocab_size={model_vocab_size} but the tokenizer has {len(tokenizer)} tokens: ids from "
            f"{model_vocab_size} on would have no embedding; use the model's own tokenizer or a vocab_size >= "
            f"{len(tokenizer)}"
        )
