"""Token rows: texts -> fixed-length id rows, and the seeded orders that shuffle rows and part files.

Role in the flow: sources -> streams -> **tokens** -> batch. Synthetic samples are trained on the
whole sentence (prompt + answer, as the official code) padded to `data.sequence_length`; text rows
are truncated and padded the same way, or packed (EOS-separated) when `data.pack_sequences` is true.
The loss masks padding (`model.labels_for`).
"""

from __future__ import annotations

import numpy as np


def token_ids(tokenizer, texts: list[str]) -> list[list[int]]:
    """The ids of each text without special tokens, as `tokenizer(texts, add_special_tokens=False)` gives them.

    A fast tokenizer whose backend has no truncation or padding set is asked directly
    (`encode_batch_fast`: no offsets or word ids are computed): the same ids at 0.6 of the time for a
    LEGO batch, which is the larger part of a synthetic batch's assembly (docs/performance.md).
    Anything else goes through the tokenizer's own call, which switches such settings off for it.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or backend.truncation is not None or backend.padding is not None:
        return tokenizer(texts, add_special_tokens=False)["input_ids"]
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)  # the fast one: tokenizers >= 0.21
    return [encoding.ids for encoding in encode(texts, add_special_tokens=False)]


def encode_texts(tokenizer, texts: list[str], sequence_length: int, pack: bool = False) -> np.ndarray:
    """Token rows of exactly `sequence_length` ids (int32), padded with the pad id.

    pack=False: one text per row, truncated. pack=True: texts joined with EOS and cut into full rows
    (the last partial row is padded).
    """
    pad_id = tokenizer.pad_token_id
    encoded = token_ids(tokenizer, list(texts))
    if pack:
        stream: list[int] = []
        for ids in encoded:
            stream.extend(ids)
            stream.append(tokenizer.eos_token_id)
        num_rows = max(1, -(-len(stream) // sequence_length))
        rows = np.full((num_rows, sequence_length), pad_id, dtype=np.int32)
        flat = np.asarray(stream, dtype=np.int32)
        rows.reshape(-1)[: flat.size] = flat
        return rows
    rows = np.full((len(encoded), sequence_length), pad_id, dtype=np.int32)
    for row, ids in enumerate(encoded):
        ids = ids[:sequence_length]
        rows[row, : len(ids)] = ids
    return rows


def encode_prompt_answer(
    tokenizer, prompts: list[str], answers: list[str], sequence_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of prompt + answer tokenized jointly (as training sees the text), and a mask of answer tokens.

    A token belongs to the answer when it ends after the prompt's last character (character offsets
    of the fast tokenizer), so a token merged across the boundary counts as answer. Rows are
    truncated on the right, like `encode_texts`.
    """
    texts = [prompt + answer for prompt, answer in zip(prompts, answers)]
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    rows = np.full((len(texts), sequence_length), tokenizer.pad_token_id, dtype=np.int32)
    answer_mask = np.zeros((len(texts), sequence_length), dtype=bool)
    for row, (ids, offsets) in enumerate(zip(encoded["input_ids"], encoded["offset_mapping"])):
        ids, offsets = ids[:sequence_length], offsets[:sequence_length]
        rows[row, : len(ids)] = ids
        answer_mask[row, : len(ids)] = [end > len(prompts[row]) for _, end in offsets]
    return rows, answer_mask


def tokenize_text_batch(batch: dict[str, np.ndarray], tokenizer, text_column: str, sequence_length: int, pack: bool):
    """One batch of a text column as token rows (a Ray Data `map_batches` function, also used in-process)."""
    texts = [str(text) for text in batch[text_column]]
    return {"input_ids": encode_texts(tokenizer, texts, sequence_length, pack)}


def epoch_part_order(seed: int, epoch: int, num_parts: int) -> np.ndarray:
    """The seeded order in which a skill's part files are read in one epoch (both parquet streams)."""
    return np.random.default_rng([seed, epoch, 0xDA7A]).permutation(num_parts)


def shuffle_batch_rows(rows: np.ndarray, seed: int, step: int, rank: int) -> np.ndarray:
    """This rank's batch rows in a seeded order, so skills are mixed within the batch."""
    return rows[np.random.default_rng([seed, step, rank, 0xBA7C]).permutation(len(rows))]
