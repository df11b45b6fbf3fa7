"""Checkpoints: what a run needs to continue identically, written by rank 0, read by every rank.

Role in the flow: train loop -> **checkpoint** -> (resume) train loop. A checkpoint is a dict of
stateful parts (`CheckpointParts`), so a new stateful part is one entry, not a new argument:

* `files`: one file each, written by rank 0 and read by every rank: `model.pt`, `optimizer.pt`,
  `scheduler.pt` (tensors, loaded with `weights_only=True`), `sampler.json` (the sampler's state:
  strategy, loss history, published rounds, run log; loaded by rank 0 into the one shared sampler)
  and, for a sample-level curriculum, `curriculum_losses.pt` (the pool's scores). `.pt` parts go
  through torch.save/torch.load, `.json` parts through JSON.
* `per_rank`: every rank's own state (data positions, torch RNG), gathered into `train_state.json`
  with the step, the world size and the fingerprint of the configuration that wrote it. Each part
  restores itself from the list of every rank's state (`load_rank_states`), so a resume with another
  worker count is the part's decision.

`checkpoint_manifest.json` (every file's size and SHA-256) is written last. Nothing is unpickled from
user paths. Ray Train copies the directory to `<storage_path>/<run>/fit-N/checkpoint_*` (a new
`fit-N` for every `run_training` call, so Ray Train never restores a checkpoint by itself); a new fit
resumes from the newest checkpoint that matches its manifest and the run's fingerprint, skipping
(with a warning naming it and why) any that was truncated, emptied or cut short.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from skillit_ray.config.job import JobConfig
from skillit_ray.data.source import SkillSetup
from skillit_ray.data.storage import RunStorage, atomic_write_bytes
from skillit_ray.train import distributed
from skillit_ray.train.parallel import SHARDED_DIRECTORY, ModelAndOptimizer

logger = logging.getLogger("skillit_ray")

TRAIN_STATE_FILE = "train_state.json"
MANIFEST_FILE = "checkpoint_manifest.json"
FIT_PREFIX = "fit-"
"""Each `run_training` call is one Ray Train run `<run>/fit-N`, holding its `checkpoint_*` directories."""
CHECKPOINT_FILES = ("scheduler.pt", TRAIN_STATE_FILE, "sampler.json")
"""Files every complete checkpoint holds, besides the model and optimizer (`WEIGHT_FILES`)."""
WEIGHT_FILES = {"ddp": ("model.pt", "optimizer.pt"), "fsdp": (f"{SHARDED_DIRECTORY}/.metadata",)}
"""The model and optimizer: whole tensors written by rank 0 (ddp), or a torch.distributed.checkpoint
directory every rank writes its shards into (fsdp); a checkpoint holds one or the other."""


@dataclass
class CheckpointParts:
    """The stateful parts of a run: file name -> part (rank 0 writes), name -> per-rank part."""

    files: dict[str, Any] = field(default_factory=dict)
    per_rank: dict[str, Any] = field(default_factory=dict)
    weights: ModelAndOptimizer | None = None
    """The model and optimizer (`parallel.ModelAndOptimizer`): model.pt + optimizer.pt, or sharded/."""


class TorchRngState:
    """This rank's torch RNG as a per-rank part (another worker count restores rank 0's)."""

    def state_dict(self) -> list[int]:
        return torch.get_rng_state().tolist()

    def load_rank_states(self, states_by_rank: list[list[int]], rank: int, world_size: int) -> None:
        own = states_by_rank[rank] if len(states_by_rank) == world_size else states_by_rank[0]
        torch.set_rng_state(torch.tensor(own, dtype=torch.uint8))


class RankZeroPart:
    """A file part that only rank 0 loads (the sampler: one shared actor for every rank)."""

    def __init__(self, part: Any, rank: int) -> None:
        self.part, self.rank = part, rank

    def state_dict(self) -> Any:
        return self.part.state_dict()

    def load_state_dict(self, state: Any) -> None:
        if self.rank == 0:
            self.part.load_state_dict(state)


def config_fingerprint(config: JobConfig, setup: SkillSetup) -> str:
    """Hash of what a checkpoint must share with the run resuming it (not steps, workers or storage)."""
    relevant = {
        "skills": [setup.train_skills, setup.eval_skills],
        "data": [config.data.source, config.data.sequence_length, config.data.pack_sequences],
        "model": [config.model.size, config.model.overrides, config.model.checkpoint, config.model.revision],
        "mixture": {k: v for k, v in config.to_dict()["mixture"].items() if k != "graph_path"},
        "seed": config.train.seed,
        "batch_size": config.train.batch_size,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_checkpoint(
    step: int, parts: CheckpointParts, context: distributed.WorkerContext, fingerprint: str
) -> str | None:
    """Gather every rank's per-rank parts; rank 0 writes the directory (others get None). Sharded weights:
    every rank writes its shards into its own directory first (returned to it too, for Ray Train to merge
    into the one checkpoint), and rank 0's manifest lists every rank's files."""
    states = distributed.all_gather_objects({name: part.state_dict() for name, part in parts.per_rank.items()})
    weights = parts.weights
    sharded = weights is not None and weights.sharded
    directory = Path(tempfile.mkdtemp(prefix="skillit-checkpoint-")) if (sharded or context.rank == 0) else None
    other_files: dict[str, dict[str, Any]] = {}
    if sharded:
        import torch.distributed.checkpoint as dcp

        try:
            dcp.save(weights.sharded_state(), checkpoint_id=str(directory / SHARDED_DIRECTORY))
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        own = file_digests(directory) if context.rank != 0 else {}
        for files in distributed.all_gather_objects(own):
            other_files.update(files)
    if context.rank != 0:
        return str(directory) if directory is not None else None
    assert directory is not None
    try:
        if weights is not None and not sharded:
            torch.save(weights.model.state_dict(), directory / "model.pt")
            torch.save(weights.optimizer.state_dict(), directory / "optimizer.pt")
        for file_name, part in parts.files.items():
            if file_name.endswith(".json"):
                (directory / file_name).write_text(json.dumps(part.state_dict()))
            else:
                torch.save(part.state_dict(), directory / file_name)
        state = {"step": step, "world_size": context.world_size, "ranks": states, "fingerprint": fingerprint}
        (directory / TRAIN_STATE_FILE).write_text(json.dumps(state))
        write_manifest(directory, other_files)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)  # no half-written staging directory left behind
        raise
    return str(directory)


def restore(directory: str | Path, parts: CheckpointParts, context: distributed.WorkerContext) -> int:
    """Load every part from a checkpoint directory; returns the step it was written at."""
    directory = Path(directory)
    state = json.loads((directory / TRAIN_STATE_FILE).read_text())
    if parts.weights is not None:
        restore_weights(directory, parts.weights)
    for file_name, part in parts.files.items():
        path = directory / file_name
        if not path.is_file():
            raise ValueError(f"checkpoint {directory} has no {file_name}; it was written by another kind of run")
        if file_name.endswith(".json"):
            part.load_state_dict(json.loads(path.read_text()))
        else:  # onto CPU: parts copy tensors to their own device (model parameters, optimizer state)
            part.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    for name, part in parts.per_rank.items():
        part.load_rank_states([rank_state[name] for rank_state in state["ranks"]], context.rank, context.world_size)
    distributed.barrier()
    return int(state["step"])


def restore_weights(directory: Path, weights: ModelAndOptimizer) -> None:
    """The model and optimizer from whichever form the checkpoint holds, into either parallelism."""
    if (directory / WEIGHT_FILES["fsdp"][0]).is_file():
        import torch.distributed.checkpoint as dcp

        state = weights.sharded_state()
        dcp.load(state, checkpoint_id=str(directory / SHARDED_DIRECTORY))
        weights.load_sharded_state(state)
        return
    missing = [name for name in WEIGHT_FILES["ddp"] if not (directory / name).is_file()]
    if missing:
        raise ValueError(
            f"checkpoint {directory} has neither {SHARDED_DIRECTORY}/ nor {', '.join(missing)}: it was written by "
            "another kind of run"
        )
    model_state = torch.load(directory / "model.pt", map_location="cpu", weights_only=True)
    optimizer_state = torch.load(directory / "optimizer.pt", map_location="cpu", weights_only=True)
    weights.load_full(model_state, optimizer_state)


def _digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def file_digests(directory: Path) -> dict[str, dict[str, Any]]:
    """Size and SHA-256 of every file under `directory`, by path relative to it."""
    return {
        path.relative_to(directory).as_posix(): {"bytes": path.stat().st_size, "sha256": _digest(path.read_bytes())}
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != MANIFEST_FILE
    }


def write_manifest(directory: Path, other_files: dict[str, dict[str, Any]] | None = None) -> None:
    """Every file's size and SHA-256 in `checkpoint_manifest.json` (with `other_files`: the shards other ranks
    wrote), written last and atomically: a checkpoint without it, or whose files disagree with it, was cut
    short and is never restored."""
    files = {**(other_files or {}), **file_digests(directory)}
    atomic_write_bytes(directory / MANIFEST_FILE, json.dumps({"files": dict(sorted(files.items()))}, indent=1).encode())


def verify_checkpoint(storage: RunStorage, directory: str) -> str | None:
    """Why the checkpoint at `directory` (relative to the run) cannot be restored, or None when it is whole."""
    if not storage.exists(f"{directory}/{MANIFEST_FILE}"):
        return f"no {MANIFEST_FILE} (it is written last: the checkpoint was cut short)"
    try:
        manifest = json.loads(storage.read_text(f"{directory}/{MANIFEST_FILE}"))["files"]
    except (ValueError, KeyError, TypeError) as error:
        return f"unreadable {MANIFEST_FILE} ({error})"
    for name in CHECKPOINT_FILES:
        if name not in manifest:
            return f"its manifest lists no {name}"
    if not any(all(name in manifest for name in names) for names in WEIGHT_FILES.values()):
        return "its manifest lists neither model.pt + optimizer.pt nor a sharded/ model and optimizer"
    for name, expected in manifest.items():
        if not storage.exists(f"{directory}/{name}"):
            return f"{name} is missing"
        payload = storage.read_bytes(f"{directory}/{name}")
        if len(payload) != expected["bytes"]:
            return f"{name} has {len(payload)} bytes, the manifest says {expected['bytes']} (truncated)"
        if _digest(payload) != expected["sha256"]:
            return f"{name} does not match its SHA-256 in the manifest (corrupted)"
    return None


def checkpoint_directories(storage: RunStorage) -> list[str]:
    """Every checkpoint directory of the run, relative to it: one `fit-N/` per `run_training` call."""
    found = []
    for fit in storage.list_directories(FIT_PREFIX):
        found.extend(f"{fit}/{name}" for name in storage.list_directories("checkpoint_", under=fit))
    return found


def newest_whole_checkpoint(storage: RunStorage, fit: str | None = None) -> tuple[int, str, dict] | None:
    """(step, directory, train state) of the newest checkpoint of the run (or of one `fit`) that verifies
    against its manifest. Checked newest first, so only the ones skipped are read whole; each skipped one
    gets a warning naming it and why."""
    candidates: list[tuple[float, str]] = []
    for directory in checkpoint_directories(storage):
        if fit is None or directory.startswith(f"{fit}/"):
            try:
                step = int(json.loads(storage.read_text(f"{directory}/{TRAIN_STATE_FILE}"))["step"])
            except (OSError, ValueError, KeyError, TypeError):
                step = math.inf  # no readable state: checked first (it may be the newest), and it will not verify
            candidates.append((step, directory))
    for step, directory in sorted(candidates, reverse=True):
        reason = verify_checkpoint(storage, directory)
        if reason is not None:
            logger.warning("skipping checkpoint %s: %s", storage.uri(directory), reason)
            continue
        return int(step), directory, json.loads(storage.read_text(f"{directory}/{TRAIN_STATE_FILE}"))
    return None


def find_latest_checkpoint(storage: RunStorage, fingerprint: str) -> str | None:
    """The newest whole checkpoint of the run (verified against its manifest); invalid ones are skipped
    with a warning naming them and why. Raises if the newest whole one was written by another config."""
    newest = newest_whole_checkpoint(storage)
    if newest is None:
        return None
    step, directory, state = newest
    if state.get("fingerprint") != fingerprint:
        raise ValueError(
            f"checkpoint {storage.uri(directory)} (step {step}) was written by a different configuration "
            "(skills, model, mixture, seed or batch size differ); use another run.name or set run.resume=false"
        )
    return storage.uri(directory)


def next_fit_name(storage: RunStorage) -> str:
    """A fresh Ray Train run name for this `run_training` call: Ray Train then restores nothing by
    itself (its snapshot is per fit), so the checkpoint restored is always the driver's verified choice."""
    indices = [int(name[len(FIT_PREFIX) :]) for name in storage.list_directories(FIT_PREFIX)
               if name[len(FIT_PREFIX) :].isdigit()]  # fmt: skip
    return f"{FIT_PREFIX}{max(indices, default=-1) + 1}"
