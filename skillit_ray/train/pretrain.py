"""`skillit-ray pretrain`: train a base model once and save it where `model.pretrained_path` loads it.

Role in the flow: **pretrain** -> `model.pretrained_path` -> graph / tune / train / pipeline. The paper
continues a pre-trained model on its LEGO skills (reference section 4.1); a model from scratch at CPU
scale learns none of them (science notes, section 1). This trains the base with the ordinary pipeline
(`run_training`: Ray Train workers, the sampler, any data source and strategy, checkpoints; an
interrupted pretraining resumes under the same `run.name`) and then writes the final weights with
`save_pretrained`, the run's tokenizer and `pretrain.json` (what was trained, for how long, the final
per-skill validation) to `--out`. For LEGO, the `lookup` source (`skills/lookup.py`) is a corpus in
LEGO's own words that teaches the pointer-following its skills need, without their parities.

The weights come from the run's export (`<run>/model/`, `train.export_model`, written under ddp and fsdp
alike); without one, from the ddp checkpoint's `model.pt`. Under fsdp the checkpoint is sharded, so an
fsdp pretraining needs the export, and says so before Ray starts.

`--out` is written whole or not at all: into a staging directory beside it, renamed into place at the
end; an existing `--out` is refused before Ray starts unless `--overwrite`.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

from skillit_ray.config.job import JobConfig


def check_out_directory(out: str, overwrite: bool) -> Path:
    """The output directory, refused when it exists (unless `overwrite`) or names a remote URI."""
    if "://" in out:
        raise ValueError(f"--out {out!r}: pretrain writes a local model directory; give a local path")
    path = Path(out)
    if path.exists() and not overwrite:
        raise ValueError(f"--out {out} exists; choose another directory or pass --overwrite to replace it")
    return path


def exported_files(storage, step: int) -> list[str] | None:
    """The files of the run's export (`<run>/model/export.json` lists them) when it holds the model of `step`,
    else None (no export, or one from another step)."""
    from skillit_ray.train.export import EXPORT_DIRECTORY, EXPORT_RECORD

    if not storage.exists(f"{EXPORT_DIRECTORY}/{EXPORT_RECORD}"):
        return None
    record = json.loads(storage.read_text(f"{EXPORT_DIRECTORY}/{EXPORT_RECORD}"))
    return list(record["files"]) if record.get("step") == step else None


def pretrain(config: JobConfig, out: str, overwrite: bool = False) -> dict[str, Any]:
    """Train as configured (Ray Train), then save the final model and tokenizer to `out`; returns pretrain.json."""
    import torch

    from skillit_ray.data.hub import model_directory
    from skillit_ray.data.sources.registry import load_skill_tokenizer
    from skillit_ray.data.storage import RunStorage
    from skillit_ray.train.checkpoint import newest_whole_checkpoint
    from skillit_ray.train.export import EXPORT_DIRECTORY
    from skillit_ray.train.launch import run_training
    from skillit_ray.train.model import build_model
    from skillit_ray.train.resolve import resolve_run

    path = check_out_directory(out, overwrite)
    resolved, setup = resolve_run(config)  # every config error before Ray starts
    if resolved.train.parallelism == "fsdp" and not resolved.train.export_model:
        raise ValueError(
            "train.parallelism=fsdp with train.export_model=false: pretrain saves the base from the run's export "
            "(<run>/model/), since an fsdp checkpoint is sharded; set train.export_model=true"
        )
    summary = run_training(config)
    storage = RunStorage(resolved.run.storage_path, resolved.run.name)
    newest = newest_whole_checkpoint(storage)
    if newest is None or newest[0] != resolved.train.steps:
        found = "none" if newest is None else f"the newest is at step {newest[0]}"
        raise ValueError(
            f"run {storage.uri('')} has no whole checkpoint at its last step {resolved.train.steps} ({found}); "
            "train it to the end (the same command resumes it) before saving the base"
        )
    step, directory, _ = newest
    exported = exported_files(storage, step)
    record = {
        "source": resolved.data.source,
        "skills": setup.train_skills,
        "steps": step,
        "checkpoint": storage.uri(directory),
        "model": resolved.model.checkpoint or resolved.model.size,
        "sequence_length": resolved.data.sequence_length,
        "eval_skills": summary.get("eval_skills"),
        "per_skill_val_loss": summary.get("per_skill_val_loss"),
        "per_skill_accuracy": summary.get("per_skill_accuracy"),
        "run": storage.uri(""),
    }
    staging = path.with_name(f".{path.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if exported is not None:  # the run's own export: the weights, config and tokenizer as the run wrote them
        record["export"] = storage.uri(EXPORT_DIRECTORY)
        for name in exported:
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_bytes(storage.read_bytes(f"{EXPORT_DIRECTORY}/{name}"))
    else:  # a ddp run that did not export: the final checkpoint's model.pt into the configured model
        tokenizer = load_skill_tokenizer(setup)
        model = build_model(
            resolved.model.size,
            vocab_size=len(tokenizer),
            max_sequence_length=resolved.data.sequence_length,
            pretrained_path=model_directory(resolved.model),
            overrides=resolved.model.overrides,
        )
        checkpoint_bytes = io.BytesIO(storage.read_bytes(f"{directory}/model.pt"))
        weights = torch.load(checkpoint_bytes, map_location="cpu", weights_only=True)
        model.load_state_dict(weights)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    (staging / "pretrain.json").write_text(json.dumps(record, indent=2) + "\n")
    if path.exists():  # --overwrite: the old directory goes only once the new one is complete
        shutil.rmtree(path)
    staging.rename(path)
    return record
