"""The token store: text tokenized once into per-skill shards of fixed-length token rows, read by index.

Role in the flow: `skillit-ray prepare tokens` (`prepare/tokens.py`, on Ray Data: `tokenize_job.py`) writes
a store -> **store** -> the tokens source (`sources/tokens.py`) reads it. Megatron's indexed datasets and
litgpt's or nanoGPT's token files do the same: tokenize once, then every step is a few index look-ups.

Layout (a local directory or an `s3://` / `gs://` URI; pyarrow filesystems):

    STORE/manifest.json                          written last: the store is complete when it exists
    STORE/tokenizer/                             the tokenizer that made it (save_pretrained)
    STORE/<split>/<skill>/shard-NNNNN.tokens     rows x sequence_length ids, little-endian uint16 or uint32
    STORE/<split>/<skill>/shard-NNNNN.mask       rows x sequence_length uint8, 1 at scored (answer) tokens;
                                                 only for prompt/answer data
    STORE/records/<split>/<skill>/shard-NNNNN.json   a shard's record, written after the shard: what a resumed
                                                 prepare skips, and what the manifest is built from

One shard per input part file (`prepare --rows-per-part` bounds its size), so shard k of a skill holds
the documents of part k in order: unpacked, row i is document i padded or cut to the sequence length;
packed, the part's documents joined with EOS and cut into rows (the last padded). Every file is
written under a temporary name and renamed (one PUT on object storage): a half-written shard is never
visible, and a shard's bytes depend only on its part, the tokenizer and the options, so a prepare
killed and run again writes the same store, byte for byte.

Pure: numpy and pyarrow, no Ray.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.fs as pafs

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
TOKENIZER_DIRECTORY = "tokenizer"
RECORDS_DIRECTORY = "records"
SPLITS = ("train", "val")


def storage_filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path within it) of a local path or a URI (`s3://bucket/prefix?endpoint_override=...`)."""
    if "://" in location:
        filesystem, path = pafs.FileSystem.from_uri(location)
        return filesystem, path.rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(location))


def tokenizer_hash(tokenizer) -> str:
    """SHA-256 of the tokenizer's full definition (vocabulary, merges, normalizer, special tokens)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    definition = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    special = json.dumps({"pad": tokenizer.pad_token_id, "eos": tokenizer.eos_token_id}, sort_keys=True)
    return hashlib.sha256((definition + special).encode()).hexdigest()


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 while every id fits, else uint32."""
    return np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<u4")


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def write_atomically(filesystem: pafs.FileSystem, path: str, payload: bytes) -> None:
    """Write `payload` so that `path` either does not exist or holds all of it."""
    filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
    if isinstance(filesystem, pafs.LocalFileSystem):
        temporary = f"{path}.{uuid.uuid4().hex}.partial"
        with filesystem.open_output_stream(temporary) as stream:
            stream.write(payload)
        os.replace(temporary, path)  # atomic on one filesystem
        return
    with filesystem.open_output_stream(path) as stream:  # an object store's single PUT is atomic
        stream.write(payload)


@dataclass(frozen=True)
class ShardRecord:
    """One written shard: where, how many rows and real (non-pad) tokens, its bytes and their SHA-256."""

    split: str
    skill: str
    shard: str
    rows: int
    tokens: int
    bytes: int
    sha256: str
    has_mask: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def write_shard(
    filesystem: pafs.FileSystem, root: str, split: str, skill: str, index: int, rows: np.ndarray,
    mask: np.ndarray | None, dtype: np.dtype, pad_id: int,
) -> ShardRecord:  # fmt: skip
    """Write one shard (and its mask), then its record; returns the record."""
    payload = np.ascontiguousarray(rows, dtype=dtype).tobytes()
    directory = f"{root}/{split}/{skill}"
    name = shard_name(index)
    write_atomically(filesystem, f"{directory}/{name}.tokens", payload)
    if mask is not None:
        write_atomically(filesystem, f"{directory}/{name}.mask", np.ascontiguousarray(mask, dtype=np.uint8).tobytes())
    record = ShardRecord(
        split, skill, name, int(rows.shape[0]), int((rows != pad_id).sum()), len(payload),
        hashlib.sha256(payload).hexdigest(), mask is not None,
    )  # fmt: skip
    write_atomically(filesystem, record_path(root, split, skill, name), json.dumps(record.to_dict()).encode())
    return record


def record_path(root: str, split: str, skill: str, shard: str) -> str:
    return f"{root}/{RECORDS_DIRECTORY}/{split}/{skill}/{shard}.json"


def read_record(filesystem: pafs.FileSystem, root: str, split: str, skill: str, shard: str) -> ShardRecord | None:
    """A shard's record when the shard was finished (and its file still has the recorded size), else None."""
    path = record_path(root, split, skill, shard)
    if filesystem.get_file_info(path).type == pafs.FileType.NotFound:
        return None
    with filesystem.open_input_stream(path) as stream:
        record = ShardRecord(**json.loads(stream.read()))
    info = filesystem.get_file_info(f"{root}/{split}/{skill}/{shard}.tokens")
    return record if info.type == pafs.FileType.File and info.size == record.bytes else None


def build_manifest(records: list[ShardRecord], skills: list[str], header: dict[str, Any]) -> dict[str, Any]:
    """The manifest: the header (format, shape, dtype, tokenizer, source) and, per split and skill, its
    rows, tokens and shards in order."""
    splits: dict[str, dict[str, Any]] = {split: {} for split in SPLITS}
    for record in sorted(records, key=lambda item: (item.split, item.skill, item.shard)):
        entry = splits[record.split].setdefault(record.skill, {"rows": 0, "tokens": 0, "shards": []})
        entry["rows"] += record.rows
        entry["tokens"] += record.tokens
        entry["shards"].append({"name": record.shard, "rows": record.rows, "bytes": record.bytes,
                                "sha256": record.sha256, "has_mask": record.has_mask})  # fmt: skip
    return {"format_version": FORMAT_VERSION, **header, "skills": list(skills), "splits": splits}


def write_manifest(filesystem: pafs.FileSystem, root: str, manifest: dict[str, Any]) -> None:
    write_atomically(filesystem, f"{root}/{MANIFEST_FILE}", (json.dumps(manifest, indent=1) + "\n").encode())


def read_manifest(location: str) -> dict[str, Any]:
    """The manifest of a complete store; errors name the store and the fix."""
    filesystem, root = storage_filesystem(location)
    path = f"{root}/{MANIFEST_FILE}"
    if filesystem.get_file_info(path).type == pafs.FileType.NotFound:
        raise ValueError(
            f"data.tokens.path={location} has no {MANIFEST_FILE}: it is not a finished token store (a prepare "
            "writes the manifest last); run `skillit-ray prepare tokens --input DIR --out STORE` to finish it"
        )
    with filesystem.open_input_stream(path) as stream:
        manifest = json.loads(stream.read())
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"token store {location} has format version {version!r}; this skillit-ray reads version "
            f"{FORMAT_VERSION}: write it again with `skillit-ray prepare tokens`"
        )
    return manifest


READ_AHEAD_ROWS = 256
"""Object storage: rows fetched per range read (the block that holds a wanted row); local shards are mapped."""
CACHED_BLOCKS = 64
"""Object storage: blocks kept per shard (least recently used dropped first)."""


class ShardReader:
    """Rows of one shard: a memory map on local disk, block range reads with read-ahead on object storage."""

    def __init__(self, filesystem: pafs.FileSystem, path: str, rows: int, sequence_length: int, dtype: np.dtype):
        self.filesystem, self.path, self.rows, self.sequence_length, self.dtype = (
            filesystem, path, rows, sequence_length, np.dtype(dtype),
        )  # fmt: skip
        self.row_bytes = sequence_length * self.dtype.itemsize
        self.local = isinstance(filesystem, pafs.LocalFileSystem)
        self._array: np.ndarray | None = None
        self._file = None
        self._blocks: OrderedDict[int, np.ndarray] = OrderedDict()

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as an (n, sequence_length) array."""
        return self.take(np.arange(start, stop))

    def take(self, rows: np.ndarray) -> np.ndarray:
        """These rows (any order, repeats allowed) as an (n, sequence_length) array of the store's dtype."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.local:
            if self._array is None:
                self._array = np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.rows, self.sequence_length))
            return np.asarray(self._array[rows])
        out = np.empty((rows.size, self.sequence_length), dtype=self.dtype)
        blocks = rows // READ_AHEAD_ROWS
        for block in np.unique(blocks):
            wanted = blocks == block
            out[wanted] = self._block(int(block))[rows[wanted] - block * READ_AHEAD_ROWS]
        return out

    def _block(self, block: int) -> np.ndarray:
        if block in self._blocks:
            self._blocks.move_to_end(block)
            return self._blocks[block]
        if self._file is None:
            self._file = self.filesystem.open_input_file(self.path)
        start, stop = block * READ_AHEAD_ROWS, min(self.rows, (block + 1) * READ_AHEAD_ROWS)
        payload = self._file.read_at((stop - start) * self.row_bytes, start * self.row_bytes)
        if len(payload) != (stop - start) * self.row_bytes:
            raise ValueError(f"token shard {self.path} ended early (truncated copy?); write the store again")
        self._blocks[block] = np.frombuffer(payload, dtype=self.dtype).reshape(stop - start, self.sequence_length)
        if len(self._blocks) > CACHED_BLOCKS:
            self._blocks.popitem(last=False)
        return self._blocks[block]


def file_sizes(filesystem: pafs.FileSystem, directory: str) -> dict[str, int]:
    """Size of every file under a directory, by path (one listing, also on object storage)."""
    if filesystem.get_file_info(directory).type == pafs.FileType.NotFound:
        return {}
    selector = pafs.FileSelector(directory, recursive=True)
    return {info.path: info.size for info in filesystem.get_file_info(selector) if info.type == pafs.FileType.File}


def local_tokenizer_directory(location: str, tokenizer_sha256: str) -> str:
    """A local directory holding the store's tokenizer: the store's own when local, else a copy in the user's
    cache named by the tokenizer's hash (made once per machine)."""
    filesystem, root = storage_filesystem(location)
    if isinstance(filesystem, pafs.LocalFileSystem):
        return f"{root}/{TOKENIZER_DIRECTORY}"
    cache = Path(os.environ.get("SKILLIT_RAY_CACHE", Path.home() / ".cache" / "skillit-ray")) / "tokenizers"
    target = cache / tokenizer_sha256
    if (target / "tokenizer.json").is_file():
        return str(target)
    staging = cache / f"{tokenizer_sha256}.{uuid.uuid4().hex}.partial"
    staging.mkdir(parents=True)
    for path, _ in file_sizes(filesystem, f"{root}/{TOKENIZER_DIRECTORY}").items():
        with filesystem.open_input_stream(path) as stream:
            (staging / path.rsplit("/", 1)[1]).write_bytes(stream.read())
    try:
        os.replace(staging, target)
    except OSError:  # another process on this machine made it first
        shutil.rmtree(staging, ignore_errors=True)
    return str(target)
