"""How the model is spread over the workers: DDP or FSDP2, activation checkpointing, and its whole state.

Role in the flow: step (`build_training_parts`) -> **parallel** -> the loop trains what it returns;
checkpoint and export read the state through it. `train.parallelism`:

* `ddp`: every rank holds the whole model; Ray Train's `prepare_model` wraps it in DDP (gradients
  all-reduced). The checkpoint's model and optimizer are rank 0's `model.pt` and `optimizer.pt`.
* `fsdp`: FSDP2 (`torch.distributed.fsdp.fully_shard`) on every transformer block (the model's
  `_no_split_modules`, as Hugging Face names them) and at the root, as torchtitan applies it: each rank
  holds 1/N of the parameters, gradients and AdamW states, and gathers one block's weights at a time.
  On a GPU with bf16 the `MixedPrecisionPolicy` computes in bf16 and reduces gradients in fp32;
  `train.fsdp_cpu_offload` keeps the shards in CPU memory. The checkpoint's model and optimizer are
  one `torch.distributed.checkpoint` directory written by every rank (`sharded/`), which loads onto
  any number of ranks.

Under fsdp on more than one rank, only rank 0 reads the weights (or draws the fresh ones): the others build
the model on the meta device, shard it, and receive their shards from rank 0 (`load_from_rank0`), so a
node's host memory holds one whole copy of the model, not one per GPU. (`train.fsdp_cpu_offload` keeps the
older way: every rank builds the whole model, then shards it.)

`train.activation_checkpointing` recomputes each block's activations in the backward pass (the Hugging
Face gradient checkpointing where the model supports it, else torch's checkpoint wrapper per block).
Either kind of checkpoint resumes under either parallelism (`ModelAndOptimizer`).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

logger = logging.getLogger("skillit_ray")

SHARDED_DIRECTORY = "sharded"
"""The checkpoint's `torch.distributed.checkpoint` directory (model and optimizer) under fsdp."""


def transformer_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks of a causal LM: the modules whose class the model lists in `_no_split_modules`
    (GPT2Block, LlamaDecoderLayer, Qwen2DecoderLayer, ...), else the children of its longest ModuleList."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    blocks = [module for module in model.modules() if type(module).__name__ in names]
    if blocks:
        return blocks
    lists = [module for module in model.modules() if isinstance(module, torch.nn.ModuleList)]
    if not lists:
        name = type(model).__name__
        raise ValueError(f"{name} has no transformer blocks to shard (no _no_split_modules, no ModuleList)")
    return list(max(lists, key=len))


def apply_activation_checkpointing(model: torch.nn.Module) -> str:
    """Recompute every block's activations in the backward pass; returns how."""
    if getattr(model, "supports_gradient_checkpointing", False):
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x names it so
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        return "Hugging Face activation checkpointing"
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing as wrap

    block_types = tuple({type(block) for block in transformer_blocks(model)})
    wrap(model, check_fn=lambda module: isinstance(module, block_types))
    return "torch checkpoint wrapper per block"


def shard_model(model: torch.nn.Module, bf16: bool, cpu_offload: bool) -> torch.nn.Module:
    """FSDP2 per transformer block, then at the root (the embeddings, final norm and head, tied or not)."""
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard

    options: dict[str, Any] = {}
    if bf16:
        options["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    if cpu_offload:
        options["offload_policy"] = CPUOffloadPolicy()
    blocks = transformer_blocks(model)
    for index, block in enumerate(blocks):  # the last block's gradients reduce as soon as the backward ends
        fully_shard(block, reshard_after_forward=index < len(blocks) - 1, **options)
    fully_shard(model, **options)
    return model


def load_from_rank0(model: torch.nn.Module, full_state: dict[str, torch.Tensor]) -> None:
    """Rank 0's whole weights into every rank's shards, one tensor at a time (`full_state`: rank 0's state dict,
    taken before sharding; {} on the other ranks, whose model was built on the meta device and then given empty
    storage). Buffers follow from rank 0 too, with those the state dict leaves out (non-persistent: causal
    masks, rotary frequencies), which `to_empty` left uninitialized. Every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(model, full_state, options=options)
    for _, buffer in sorted(model.named_buffers()):
        torch.distributed.broadcast(buffer, src=0)


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether FSDP2 shards the model (every rank must then run the same forward passes)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def set_gradient_sync(model: torch.nn.Module, enabled: bool):
    """A context in which the backward pass reduces gradients across ranks (`enabled`) or accumulates them
    locally (micro-batches before the last): DDP's `no_sync`, FSDP2's `set_requires_gradient_sync`."""
    import contextlib

    if is_sharded(model):
        model.set_requires_gradient_sync(enabled)
        return contextlib.nullcontext()
    if not enabled and hasattr(model, "no_sync"):
        return model.no_sync()
    return contextlib.nullcontext()


def optimizer_parameter_names(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The name of every parameter in the optimizer's order (the ids of an `optimizer.pt` state dict)."""
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    return [names[id(parameter)] for group in optimizer.param_groups for parameter in group["params"]]


class ModelAndOptimizer:
    """The model and AdamW as checkpoint parts, under either parallelism.

    `full_files()` -> {"model.pt": ..., "optimizer.pt": ...} (ddp: rank 0 writes them);
    `sharded_state()` -> the `torch.distributed.checkpoint` state (fsdp: every rank writes its shards).
    Restoring reads whichever the checkpoint holds: a ddp checkpoint loads into an fsdp model (every rank
    reads the whole tensors and keeps its shard; the optimizer's parameter ids are mapped to names), a
    sharded one into a ddp model (each rank loads whole tensors).
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.model, self.optimizer = model, optimizer

    @property
    def sharded(self) -> bool:
        return is_sharded(self.model)

    def sharded_state(self) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_state, optimizer_state = get_state_dict(self.model, self.optimizer)
        return {"model": model_state, "optimizer": optimizer_state}

    def load_sharded_state(self, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import set_state_dict

        set_state_dict(self.model, self.optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])

    def load_full(self, model_state: dict[str, torch.Tensor], optimizer_state: dict[str, Any]) -> None:
        """Whole tensors (a ddp checkpoint's model.pt and optimizer.pt) into this model and optimizer."""
        if not self.sharded:
            self.model.load_state_dict(model_state)
            self.optimizer.load_state_dict(optimizer_state)
            return
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        full = StateDictOptions(full_state_dict=True)
        set_model_state_dict(self.model, model_state, options=full)
        names = optimizer_parameter_names(self.model, self.optimizer)
        by_name = {
            "state": {names[int(index)]: value for index, value in optimizer_state["state"].items()},
            "param_groups": [
                {**group, "params": [names[int(index)] for index in group["params"]]}
                for group in optimizer_state["param_groups"]
            ],
        }
        set_optimizer_state_dict(self.model, self.optimizer, by_name, options=full)


def full_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's tensors on CPU: on rank 0 (every rank must call it under fsdp; others get {})."""
    if not is_sharded(model):
        return {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def local_state_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the parameters, gradients and optimizer states this rank holds (its shards under fsdp)."""

    def local(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to_local() if hasattr(tensor, "to_local") else tensor

    tensors = [local(parameter) for parameter in model.parameters()]
    tensors += [local(parameter.grad) for parameter in model.parameters() if parameter.grad is not None]
    tensors += [local(value) for state in optimizer.state.values() for value in state.values()
                if isinstance(value, torch.Tensor) and value.dim() > 0]  # fmt: skip
    return int(sum(tensor.numel() * tensor.element_size() for tensor in tensors))
