"""One optimizer step, and the parts it steps: the model, AdamW and the learning-rate schedule.

Role in the flow: loop -> **step** -> the model (`model.py`). `train_step` is [3] of the loop: this rank's
rows in micro-batches, the exact mean over every real token of the global batch (all ranks), no device
sync; `build_training_parts` builds what it steps, as configured.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from skillit_ray.config.job import JobConfig
from skillit_ray.data.hub import is_hub_id, model_directory
from skillit_ray.train import distributed, parallel
from skillit_ray.train.model import IGNORED_LABEL, build_model, labels_for, next_token_losses

logger = logging.getLogger("skillit_ray")


def build_training_parts(config: JobConfig, vocab_size: int, device: torch.device):
    """(model on the device, AdamW, warm-up/decay scheduler) as configured: activation checkpointing and,
    under `train.parallelism=fsdp` in a process group, FSDP2 sharding applied before AdamW sees the
    parameters (`parallel.py`)."""
    train = config.train
    sharded = train.parallelism == "fsdp" and distributed.process_group_size() >= 1
    # under fsdp on several ranks only rank 0 holds the whole model; the others build it on the meta device
    from_rank0 = sharded and distributed.process_group_size() > 1 and not train.fsdp_cpu_offload
    on_meta_device = from_rank0 and torch.distributed.get_rank() != 0
    model = build_model(
        config.model.size,
        vocab_size=vocab_size,
        max_sequence_length=config.data.sequence_length,
        pretrained_path=model_directory(config.model),
        overrides=config.model.overrides,
        on_meta_device=on_meta_device,
    )
    full_state = model.state_dict() if from_rank0 and not on_meta_device else {}
    if from_rank0:  # fresh weights drew random numbers on rank 0 only: every rank continues from its generator
        distributed.broadcast_cpu_rng_state()
    if train.activation_checkpointing:
        logger.info("activation checkpointing: %s", parallel.apply_activation_checkpointing(model))
    if sharded:
        parallel.shard_model(model, train.autocast_bf16(device.type), train.fsdp_cpu_offload)
    if on_meta_device:
        model.to_empty(device=device)
    if not train.fsdp_cpu_offload:
        model = model.to(device)
    if from_rank0:
        parallel.load_from_rank0(model, full_state)
        del full_state
    optimizer = build_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(step, config))
    return model, optimizer, scheduler


def fetch_model_on_this_node(config: JobConfig, context) -> None:
    """A hub model's files on this node before any worker loads them: the node's first worker fetches them
    when absent (the driver fetched them on its own machine already) while the others wait."""
    if is_hub_id(config.model.checkpoint):
        if context.local_rank == 0:
            model_directory(config.model, fetch=True)
        distributed.barrier()


def learning_rate_factor(step: int, config: JobConfig) -> float:
    """Linear warmup, then linear (official), cosine or constant decay over the remaining steps."""
    train = config.train
    if step < train.warmup_steps:
        return (step + 1) / train.warmup_steps
    if train.lr_schedule == "constant":
        return 1.0
    progress = (step - train.warmup_steps) / max(1, train.steps - train.warmup_steps)
    if train.lr_schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def build_optimizer(model: torch.nn.Module, config: JobConfig) -> torch.optim.Optimizer:
    """AdamW, no weight decay on biases and LayerNorm weights (official `create_optimizer_scheduler`)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (no_decay if parameter.ndim < 2 or "ln" in name or "norm" in name else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": config.train.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = next(model.parameters()).is_cuda
    return torch.optim.AdamW(groups, lr=config.train.learning_rate, betas=(0.9, 0.999), eps=1e-8, fused=fused)


def train_step(
    model, optimizer, input_ids: np.ndarray, pad_id: int, config: JobConfig, context, autocast_bf16: bool
) -> tuple[torch.Tensor, float]:
    """One optimizer step over this rank's rows, in micro-batches, without a device sync.

    Returns (this rank's summed token loss as a device tensor, the global count of real tokens);
    `global_mean_loss` turns them into the step's loss when a log record needs it.

    Each rank sums token losses and divides by the global token count times world size: DDP averages
    gradients over ranks, so the result is the exact mean over every real token of the global batch,
    even when ranks hold different numbers of rows or tokens.
    """
    labels = torch.as_tensor(labels_for(input_ids, pad_id))
    inputs = torch.as_tensor(input_ids, dtype=torch.long)
    local_tokens = (labels[:, 1:] != IGNORED_LABEL).sum()
    global_tokens = distributed.all_reduce_sum(local_tokens.to(torch.float64).reshape(1)).item()
    micro = config.train.micro_batch_size or max(1, len(inputs))
    chunks = list(range(0, len(inputs), micro)) or [0]
    optimizer.zero_grad(set_to_none=True)
    loss_sum = torch.zeros((), dtype=torch.float32, device=context.device)
    for index, start in enumerate(chunks):
        chunk_inputs = inputs[start : start + micro].to(context.device, non_blocking=True)
        chunk_labels = labels[start : start + micro].to(context.device, non_blocking=True)
        last = index == len(chunks) - 1
        with parallel.set_gradient_sync(model, last):
            with torch.autocast(device_type=context.device.type, dtype=torch.bfloat16, enabled=autocast_bf16):
                logits = model(input_ids=chunk_inputs).logits
            token_losses = next_token_losses(logits, chunk_labels, reduction="sum")
            (token_losses * context.world_size / max(global_tokens, 1.0)).backward()
        loss_sum += token_losses.detach()
    if config.train.grad_clip_norm:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip_norm)
    optimizer.step()
    return loss_sum, global_tokens


def global_mean_loss(loss_sum: torch.Tensor, global_tokens: float) -> float:
    """The step's mean token loss over the global batch from each rank's summed token loss (syncs)."""
    return float(distributed.all_reduce_sum(loss_sum.double().cpu().reshape(1)).item() / max(global_tokens, 1.0))
