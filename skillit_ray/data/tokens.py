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


PACKED_LENGTH_RANGE = (64, 512)
"""Packed text: the automatic sequence length stays in this range (tokens)."""


def automatic_sequence_length(lengths: list[int], packed: bool, positions: int | None = None) -> tuple[int, str]:
    """(tokens per row, why) for documents of these token lengths: unpacked, the longest (rounded up to a
    multiple of 8) so nothing is cut; packed, the median rounded up to a power of two in 64..512; both
    capped by the model's position table when it has one."""
    values = np.asarray(lengths, dtype=np.float64)
    if packed:
        length = int(2 ** np.ceil(np.log2(max(1.0, float(np.median(values))))))
        length, why = int(np.clip(length, *PACKED_LENGTH_RANGE)), f"median document {int(np.median(values))}"
    else:
        length, why = max(8, int(np.ceil(values.max() / 8) * 8)), f"longest sampled row {int(values.max())}"
    if positions is not None and length > positions:
        length, why = positions, f"{why}, capped by the model's {positions} positions"
    return length, why


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
    """The seeded order in which a skill's part files (or a store's shards) are read in one epoch."""
    return np.random.default_rng([seed, epoch, 0xDA7A]).permutation(num_parts)


def window_order(seed: int, epoch: int, window_index: int, size: int) -> np.ndarray:
    """The seeded order of the rows in one window of an epoch's sequence (`PositionalOrder`)."""
    return np.random.default_rng([seed, epoch, window_index, 0x5F]).permutation(size)


class PositionalOrder:
    """Where position g of a skill lies: (part, row within the part), the same for every worker.

    Position g is offset g % n of epoch g // n (n = the skill's rows). An epoch is the parts in a seeded
    order (`epoch_part_order`), rows in part order, permuted within consecutive windows of `window_rows`
    rows (`window_order`). `data.parquet.split=positions` reads a prepared directory this way and the
    token store its shards (one per part), so both give the same rows in the same order.
    """

    def __init__(self, part_rows: list[int], seed: int, window_rows: int) -> None:
        self.part_rows = np.asarray(part_rows, dtype=np.int64)
        self.num_rows, self.seed, self.window_rows = int(self.part_rows.sum()), seed, max(1, window_rows)
        if self.num_rows < 1:
            raise ValueError("a skill needs at least one row")
        self._epochs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._windows: dict[tuple[int, int], np.ndarray] = {}

    def _epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        if epoch not in self._epochs:
            order = epoch_part_order(self.seed, epoch, len(self.part_rows))
            self._epochs = {epoch: (order, np.cumsum(self.part_rows[order]))}  # positions only grow: keep one
        return self._epochs[epoch]

    def _window(self, epoch: int, window: int) -> np.ndarray:
        if (epoch, window) not in self._windows:
            size = min(self.window_rows, self.num_rows - window * self.window_rows)
            self._windows = {(epoch, window): window_order(self.seed, epoch, window, size)}
        return self._windows[(epoch, window)]

    def locate(self, position: int) -> tuple[int, int]:
        """(part index, row within the part) of a position."""
        epoch, offset = divmod(int(position), self.num_rows)
        window, within = divmod(offset, self.window_rows)
        sequence_index = window * self.window_rows + int(self._window(epoch, window)[within])
        order, ends = self._epoch(epoch)
        slot = int(np.searchsorted(ends, sequence_index, side="right"))
        start = int(ends[slot - 1]) if slot else 0
        return int(order[slot]), sequence_index - start

    def locate_many(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(part indices, rows within the parts) of many positions, vectorized per epoch and window."""
        positions = np.asarray(positions, dtype=np.int64)
        epochs, offsets = np.divmod(positions, self.num_rows)
        windows, within = np.divmod(offsets, self.window_rows)
        sequence_index = np.empty_like(positions)
        windows_per_epoch = -(-self.num_rows // self.window_rows)
        keys = epochs * windows_per_epoch + windows
        for key in np.unique(keys):  # a step's positions are contiguous: one or two windows
            chosen = keys == key
            epoch, window = divmod(int(key), windows_per_epoch)
            sequence_index[chosen] = window * self.window_rows + self._window(epoch, window)[within[chosen]]
        parts, rows = np.empty_like(positions), np.empty_like(positions)
        for epoch in np.unique(epochs):
            chosen = epochs == epoch
            order, ends = self._epoch(int(epoch))
            slots = np.searchsorted(ends, sequence_index[chosen], side="right")
            starts = np.where(slots > 0, ends[np.maximum(slots - 1, 0)], 0)
            parts[chosen], rows[chosen] = order[slots], sequence_index[chosen] - starts
        return parts, rows


def shuffle_batch_rows(rows: np.ndarray, seed: int, step: int, rank: int) -> np.ndarray:
    """This rank's batch rows in a seeded order, so skills are mixed within the batch."""
    return rows[np.random.default_rng([seed, step, rank, 0xBA7C]).permutation(len(rows))]
