"""The run's final model in `save_pretrained` format: `<run>/model/`, loadable by `from_pretrained`.

Role in the flow: loop (the end of a run, every rank) -> **export** -> the run directory -> `skillit-ray
evaluate`, `model.name_or_path` of a next run, any Hugging Face tool. Under fsdp every rank takes part in
gathering the shards; rank 0 writes weights (safetensors), config and the run's tokenizer, each file
written whole (local disk or object storage through `RunStorage`), and `export.json` last.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from pathlib import Path

import torch

from skillit_ray.data.storage import RunStorage
from skillit_ray.train import console
from skillit_ray.train.parallel import full_model_state

EXPORT_DIRECTORY = "model"
EXPORT_RECORD = "export.json"


def unwrapped_class_name(model: torch.nn.Module) -> str:
    """The transformers class of a model that FSDP2 gave a class of its own (`FSDPGPT2LMHeadModel`)."""
    from transformers import PreTrainedModel

    for cls in type(model).__mro__:
        if issubclass(cls, PreTrainedModel) and not cls.__name__.startswith("FSDP"):
            return cls.__name__
    return type(model).__name__


def export_model(model: torch.nn.Module, tokenizer, storage: RunStorage, step: int, rank: int) -> str | None:
    """Gather the whole model (a collective under fsdp) and write it to `<run>/model/` on rank 0; returns
    its URI there, None on other ranks."""
    state = full_model_state(model)
    if rank != 0:
        return None
    staging = Path(tempfile.mkdtemp(prefix="skillit-export-"))
    try:
        with console.no_progress_bars():
            model.save_pretrained(staging, state_dict=state, safe_serialization=True)
        config = copy.deepcopy(model.config)
        config.architectures = [unwrapped_class_name(model)]
        config.use_cache = True  # training turns it off for activation checkpointing
        config.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        for path in sorted(staging.rglob("*")):
            if path.is_file():
                storage.write_bytes(f"{EXPORT_DIRECTORY}/{path.relative_to(staging).as_posix()}", path.read_bytes())
        record = {"step": step, "architecture": config.architectures[0], "files": sorted(
            path.relative_to(staging).as_posix() for path in staging.rglob("*") if path.is_file())}  # fmt: skip
        storage.write_text(f"{EXPORT_DIRECTORY}/{EXPORT_RECORD}", json.dumps(record, indent=1))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return storage.uri(EXPORT_DIRECTORY)
