"""Where a model's files come from: a local directory, or a Hugging Face hub id fetched once into a cache.

Role in the flow: config (`model.name_or_path`, `model.revision`, `model.cache_dir`) -> **hub** ->
resolve (the driver, before Ray starts: fetched or found, the revision pinned to a commit) -> every
worker (`model_directory`: the same snapshot, found in the node's cache; the first worker of a node
that lacks it fetches it while the others wait) -> `model.build_model` loads it.

A hub id is `ORG/NAME`; its files live in the standard Hugging Face cache layout
(`<cache>/models--ORG--NAME/snapshots/<commit>/` plus `refs/<revision>`), under `model.cache_dir` or
the default cache (`HF_HUB_CACHE`, `HF_HOME`). Nothing is fetched when the snapshot is there already;
with `HF_HUB_OFFLINE=1` or no network an uncached model is an error that names it and the command that
fetches it. Only the files a causal LM needs are fetched (config, weights, tokenizer). The token store's
prepare reads a hub id's tokenizer the same way (`prepare tokens --tokenizer ORG/NAME`). No Ray, no torch.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

MODEL_FILE_PATTERNS = [
    "*.json",
    "*.safetensors",
    "*.bin",
    "*.model",
    "*.txt",
    "*.tiktoken",
    "*.py",
]
"""What a fetch downloads: config and generation config, weights (safetensors, else the .bin files of older
repositories), tokenizer files; not the repository's other formats (gguf, onnx, flax, tf)."""
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
"""A model directory holds its own tokenizer when one of these is there."""
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ModelFiles:
    """A model's local directory and, for a hub id, the commit it is pinned to ("" for a local directory)."""

    directory: str
    commit: str = ""

    @property
    def has_tokenizer(self) -> bool:
        return any((Path(self.directory) / name).is_file() for name in TOKENIZER_FILES)


def is_hub_id(name_or_path: str) -> bool:
    """`ORG/NAME` that is not an existing local path."""
    return bool(_HUB_ID.match(name_or_path)) and not Path(name_or_path).exists()


def offline() -> bool:
    """Whether the Hugging Face hub must not be reached (`HF_HUB_OFFLINE`, read now, not at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def fetch_command(name: str, revision: str, cache_dir: str) -> str:
    """The shell command that puts the model's files into the cache a run reads."""
    options = f" --revision {revision}" if revision and revision != "main" else ""
    options += f" --cache-dir {cache_dir}" if cache_dir else ""
    return f"hf download {name}{options} --include " + " ".join(f"'{pattern}'" for pattern in MODEL_FILE_PATTERNS)


def find_model_files(name_or_path: str, revision: str = "main", cache_dir: str = "", fetch: bool = True) -> ModelFiles:
    """The model's files on this machine: a local directory as it is; a hub id's snapshot at `revision`
    from the cache, fetched first when absent and `fetch` and the hub may be reached.

    Raises:
        ValueError: the path is neither a directory nor a hub id, or the hub id is not cached and cannot
            be fetched (offline, no network, unknown id or revision); the message names the model, the
            revision and the command that fetches it.
    """
    if not is_hub_id(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_dir():
            raise ValueError(
                f"model.name_or_path={name_or_path!r} is neither a local directory nor a hub id (ORG/NAME)"
            )
        return ModelFiles(str(path.resolve()))
    from huggingface_hub import snapshot_download

    options = {"revision": revision or "main", "cache_dir": cache_dir or None, "allow_patterns": MODEL_FILE_PATTERNS}
    try:
        directory = snapshot_download(name_or_path, local_files_only=True, **options)
    except Exception as cached_error:  # not in the cache (LocalEntryNotFoundError and kin)
        if not fetch or offline():
            why = "HF_HUB_OFFLINE is set" if offline() else "it is not fetched on the workers"
            raise ValueError(
                f"model {name_or_path!r} at revision {revision!r} is not in the Hugging Face cache "
                f"({cache_dir or 'the default cache'}) and {why}; fetch it once on a machine with network: "
                f"`{fetch_command(name_or_path, revision, cache_dir)}` ({type(cached_error).__name__})"
            ) from None
        try:
            directory = snapshot_download(name_or_path, **options)
        except Exception as error:
            raise ValueError(
                f"model {name_or_path!r} at revision {revision!r} could not be fetched from the Hugging Face hub "
                f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); check the id and "
                f"revision, or fetch it where there is network: `{fetch_command(name_or_path, revision, cache_dir)}` "
                "(a gated model needs `hf auth login` first)"
            ) from None
    return ModelFiles(str(directory), Path(str(directory)).name)


def model_directory(model, fetch: bool = False) -> str:
    """The local directory of the configured checkpoint (`ModelConfig.checkpoint`), "" for fresh weights.
    Workers call it with `fetch=False` after the driver (or their node's first worker) fetched it."""
    if not model.checkpoint:
        return ""
    return find_model_files(model.checkpoint, model.revision, model.cache_dir, fetch=fetch).directory
