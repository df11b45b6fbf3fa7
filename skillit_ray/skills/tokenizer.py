"""Word-level tokenizer for the synthetic skills, built locally (no hub download).

Place in the flow: generators -> **tokenizer** -> data streams -> training/eval.

Text is split on whitespace and every punctuation character is its own token, so
"1," -> ["1", ","] and "t." -> ["t", "."]. Each word of a generator's `vocabulary()` maps
to one id, which gives two properties the evaluators rely on: the answer digit is always
exactly one token, and the token ids of a prompt are a prefix of the ids of its full
text (spaces carry no information). Ids are deterministic: the special tokens `<pad>`,
`<eos>`, `<unk>` take 0, 1, 2 and the sorted vocabulary follows. No special tokens are
added by encoding; data streams append `<eos>` themselves if they want it.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD_TOKEN = "<pad>"
EOS_TOKEN = "<eos>"
UNK_TOKEN = "<unk>"
SPECIAL_TOKENS = [PAD_TOKEN, EOS_TOKEN, UNK_TOKEN]
"""Special tokens, in id order (0, 1, 2)."""


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    split_on_whitespace = pre_tokenizers.WhitespaceSplit()
    isolate_punctuation = pre_tokenizers.Punctuation(behavior="isolated")
    return pre_tokenizers.Sequence([split_on_whitespace, isolate_punctuation])


def build_tokenizer(vocabulary: list[str]) -> PreTrainedTokenizerFast:
    """Build a word-level tokenizer over `vocabulary`.

    Args:
        vocabulary: Words to give ids to (duplicates allowed; e.g. the union of several
            generators' vocabularies). Each word must survive pre-tokenization as one
            piece, i.e. contain no whitespace and be either one punctuation character or
            free of punctuation.

    Returns:
        A fast tokenizer with `pad_token` "<pad>", `eos_token` "<eos>", `unk_token` "<unk>".

    Raises:
        ValueError: If the vocabulary is empty or a word would be split.
    """
    words = sorted(set(vocabulary) - set(SPECIAL_TOKENS))
    if not words:
        raise ValueError("vocabulary is empty")
    pre_tokenizer = _pre_tokenizer()
    for word in words:
        pieces = [piece for piece, _ in pre_tokenizer.pre_tokenize_str(word)]
        if pieces != [word]:
            raise ValueError(f"vocabulary word {word!r} would be split into {pieces}; use separate words")
    token_to_id = {token: index for index, token in enumerate(SPECIAL_TOKENS + words)}
    backend = Tokenizer(models.WordLevel(vocab=token_to_id, unk_token=UNK_TOKEN))
    backend.pre_tokenizer = pre_tokenizer
    backend.add_special_tokens(SPECIAL_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, directory: str | Path) -> Path:
    """Save a tokenizer to a local directory (created if needed).

    Args:
        tokenizer: Tokenizer from `build_tokenizer`.
        directory: Target directory.

    Returns:
        The directory as a `Path`.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(path))
    return path


def load_tokenizer(directory: str | Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer saved by `save_tokenizer`, from local files only.

    Args:
        directory: Directory holding `tokenizer.json`.

    Returns:
        The tokenizer.

    Raises:
        ValueError: If the directory has no `tokenizer.json`.
    """
    path = Path(directory)
    if not (path / "tokenizer.json").is_file():
        raise ValueError(f"no tokenizer.json in {str(path)!r}; save one with save_tokenizer first")
    return PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)
