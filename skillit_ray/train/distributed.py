"""Rank, world size, device, seeding, collectives and rank-0 logging for the training workers.

Role in the flow: the only module of the train loop that reads `ray.train.get_context()` or
`torch.distributed` directly (style rule R6). Works with one worker (no process group) too.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as torch_distributed

logger = logging.getLogger("skillit_ray")


@dataclass(frozen=True)
class WorkerContext:
    rank: int
    world_size: int
    device: torch.device
    local_rank: int = 0
    """This worker's index on its node (the node's first worker fetches what the node needs)."""
    dataset_splits: dict[str, Any] = field(default_factory=dict)
    """This rank's Ray Data `streaming_split` per skill (`data.*.reader=streaming_split`), else empty."""

    @property
    def is_rank_zero(self) -> bool:
        return self.rank == 0


def worker_context() -> WorkerContext:
    """This Train worker's rank, world size and device (GPU chosen by Ray Train)."""
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    device = ray.train.torch.get_device()
    return WorkerContext(context.get_world_rank(), context.get_world_size(), device, context.get_local_rank())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _initialized() -> bool:
    return torch_distributed.is_available() and torch_distributed.is_initialized()


def process_group_size() -> int:
    """The torch.distributed world size, 0 without a process group (an in-process run)."""
    return torch_distributed.get_world_size() if _initialized() else 0


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (in place and returned); a no-op with one worker."""
    if _initialized() and torch_distributed.get_world_size() > 1:
        torch_distributed.all_reduce(values, op=torch_distributed.ReduceOp.SUM)
    return values


def all_gather_objects(value: object) -> list[object]:
    """Every rank's value, in rank order."""
    if not _initialized() or torch_distributed.get_world_size() == 1:
        return [value]
    gathered: list[object] = [None] * torch_distributed.get_world_size()
    torch_distributed.all_gather_object(gathered, value)
    return gathered


def broadcast_cpu_rng_state() -> None:
    """Rank 0's CPU random generator state on every rank (a collective): ranks that skipped drawing rank 0's
    random numbers (a model built on the meta device) continue exactly where rank 0 does."""
    states = [torch.get_rng_state()]
    torch_distributed.broadcast_object_list(states, src=0)  # objects: a CPU tensor under nccl too
    torch.set_rng_state(states[0])


def barrier() -> None:
    if _initialized() and torch_distributed.get_world_size() > 1:
        torch_distributed.barrier()


def log_rank0(context: WorkerContext, message: str, *arguments: object) -> None:
    if context.is_rank_zero:
        logger.info(message, *arguments)
