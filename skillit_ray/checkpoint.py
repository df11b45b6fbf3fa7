"""Checkpoints: what a run needs to continue identically, written by rank 0, read by every rank.

Role in the flow: train -> **checkpoint** -> (resume) train. A checkpoint directory holds
`model.pt`, `optimizer.pt`, `scheduler.pt` (tensors only, loaded with `weights_only=True`),
`sampler.json` (the sampler actor's state: strategy, loss history, published rounds, run log) and
`train_state.json` (step, world size, each rank's data positions and torch RNG state, and the
fingerprint of the configuration that wrote it), and, for a sample-level curriculum,
`curriculum_losses.pt` (the initial model's loss of every pool sample, which orders the pool).
Nothing is unpickled from user paths. Ray Train copies the directory to
`<storage_path>/<run>/checkpoint_*`; a new fit of the same run resumes from the newest complete one
whose fingerprint matches.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import torch

from skillit_ray import distributed
from skillit_ray.storage import RunStorage

logger = logging.getLogger("skillit_ray")

CHECKPOINT_FILES = ("model.pt", "optimizer.pt", "scheduler.pt", "train_state.json", "sampler.json")


CURRICULUM_LOSSES_FILE = "curriculum_losses.pt"


def write_checkpoint(
    step, model, optimizer, scheduler, assembler, sampler, context, fingerprint: str, pool_losses=None
) -> str | None:
    """Gather every rank's data position and RNG; rank 0 writes the directory (others get None)."""
    states = distributed.all_gather_objects(
        {"assembler": assembler.state_dict(), "torch_rng": torch.get_rng_state().tolist()}
    )
    if context.rank != 0:
        return None
    directory = Path(tempfile.mkdtemp(prefix="skillit-checkpoint-"))
    torch.save(model.state_dict(), directory / "model.pt")
    torch.save(optimizer.state_dict(), directory / "optimizer.pt")
    torch.save(scheduler.state_dict(), directory / "scheduler.pt")
    (directory / "sampler.json").write_text(json.dumps(sampler.state_dict()))
    if pool_losses is not None:
        torch.save(torch.as_tensor(pool_losses, dtype=torch.float64), directory / CURRICULUM_LOSSES_FILE)
    state = {"step": step, "world_size": context.world_size, "ranks": states, "fingerprint": fingerprint}
    (directory / "train_state.json").write_text(json.dumps(state))
    return str(directory)


def restore(directory, model, optimizer, scheduler, assembler, sampler, context, pool=None) -> int:
    """Load a checkpoint into the unwrapped model, optimizer, scheduler, data position and sampler
    (and, for a sample-level curriculum, the pool's initial losses)."""
    directory = Path(directory)
    state = json.loads((directory / "train_state.json").read_text())
    model.load_state_dict(torch.load(directory / "model.pt", map_location=context.device, weights_only=True))
    optimizer.load_state_dict(torch.load(directory / "optimizer.pt", map_location=context.device, weights_only=True))
    scheduler.load_state_dict(torch.load(directory / "scheduler.pt", weights_only=True))
    ranks = state["ranks"]
    own = ranks[context.rank] if state["world_size"] == context.world_size else None
    assembler_state = dict((own or ranks[0])["assembler"])
    if own is None:  # different worker count: global positions carry over, per-rank streams restart their epoch
        assembler_state["streams"] = {
            skill: {**stream_state, "world_size": state["world_size"]}
            for skill, stream_state in ranks[0]["assembler"]["streams"].items()
        }
    assembler.load_state_dict(assembler_state)
    torch.set_rng_state(torch.tensor((own or ranks[0])["torch_rng"], dtype=torch.uint8))
    if context.rank == 0:
        sampler_state = json.loads((directory / "sampler.json").read_text())
        sampler.load_state_dict(sampler_state)
    if pool is not None:
        losses_path = directory / CURRICULUM_LOSSES_FILE
        if not losses_path.is_file():
            raise ValueError(
                f"checkpoint {directory} has no {CURRICULUM_LOSSES_FILE}; it was not written by a curriculum run"
            )
        pool.losses = torch.load(losses_path, weights_only=True).numpy()
    distributed.barrier()
    return int(state["step"])


def find_latest_checkpoint(storage: RunStorage, fingerprint: str) -> str | None:
    """Newest complete checkpoint of the run; raises if it was written by an incompatible config."""
    candidates = []
    for directory in storage.list_directories("checkpoint_"):
        if not all(storage.exists(f"{directory}/{name}") for name in CHECKPOINT_FILES):
            logger.warning("ignoring incomplete checkpoint %s", storage.uri(directory))
            continue
        state = json.loads(storage.read_text(f"{directory}/train_state.json"))
        candidates.append((int(state["step"]), directory, state))
    if not candidates:
        return None
    step, directory, state = max(candidates)
    if state.get("fingerprint") != fingerprint:
        raise ValueError(
            f"checkpoint {storage.uri(directory)} (step {step}) was written by a different configuration "
            "(skills, model, mixture, seed or batch size differ); use another run.name or set run.resume=false"
        )
    return storage.uri(directory)
