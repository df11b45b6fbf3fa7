"""The memory preflight: GPU memory per worker for ddp and fsdp, and the settings that would make a job fit.

Role in the flow: config -> resolve (before Ray starts) / `skillit-ray memory` -> **memory** -> a refusal
that names the numbers and the settings that would fit. Pure arithmetic over the model's shape (its
parameters counted on the meta device: no weights read) and the job's batch, sequence length, precision,
worker count and parallelism. The terms, per GPU, in bytes:

* weights, gradients, AdamW states: fp32, 4 + 4 + 8 bytes per parameter; all of them on every GPU under
  ddp (plus DDP's gradient buckets, 4 more, and autocast's bf16 weight copies, 2 more), 1/N of them under
  fsdp plus the whole bf16 (or fp32) weights of the two blocks in flight and of the root (embeddings,
  head); `train.fsdp_cpu_offload` moves the shards to CPU memory;
* activations: per block and token, 34 x width bytes in bf16 (twice that in fp32), the estimate of
  Korthikanti et al. 2022 for a block whose attention keeps no score matrix (SDPA); with activation
  checkpointing each block keeps only its input (2 x width) and one block is recomputed at a time;
* logits: micro-batch x sequence length x vocabulary, the bf16 or fp32 logits, the fp32 copy the loss
  takes and its gradient;
* the CUDA context and allocator slack: 1.5 GiB plus 10% of the rest.

It is an estimate, for refusing what cannot fit before a cluster starts; the measured peak of a run is in
its throughput record (`peak_memory_bytes`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

GIB = 1024**3
CONTEXT_BYTES = 1.5 * GIB
SLACK = 0.10
ACTIVATION_BYTES_PER_WIDTH = 34
"""bf16 activation bytes per token per block, per unit of width (Korthikanti et al. 2022, no attention scores)."""

GPU_MEMORY_GIB_BY_INSTANCE = {
    "p3": 16, "p3dn": 32, "p4d": 40, "p4de": 80, "p5": 80, "p5e": 141, "p5en": 141, "p6": 179,
    "g4dn": 16, "g5": 24, "g6": 24, "g6e": 48, "g3": 8, "p2": 12,
    "a2-highgpu": 40, "a2-megagpu": 40, "a2-ultragpu": 80, "a3-highgpu": 80, "a3-megagpu": 80, "a3-ultragpu": 141,
    "g2-standard": 24,
}  # fmt: skip
"""GPU memory (GiB per GPU) of the cloud instance families the cluster files use (AWS family before the
dot; GCP machine type before its last dash)."""


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs of a model."""

    parameters: int
    layers: int
    width: int
    vocabulary: int
    root_parameters: int
    """Parameters outside the blocks (embeddings, final norm, untied head): FSDP gathers them at the root."""


@dataclass(frozen=True)
class MemoryJob:
    """The settings of a job that decide its memory per GPU."""

    parallelism: str
    workers: int
    micro_batch_rows: int
    sequence_length: int
    bf16: bool
    activation_checkpointing: bool
    cpu_offload: bool = False


def model_shape(model: Any) -> ModelShape:
    """The shape of a transformers model (built on the meta device: no memory, no weights)."""
    from skillit_ray.train.parallel import transformer_blocks

    blocks = transformer_blocks(model)
    in_blocks = sum(parameter.numel() for block in blocks for parameter in block.parameters())
    parameters = sum(parameter.numel() for parameter in model.parameters())
    config = model.config
    width = getattr(config, "hidden_size", None) or config.n_embd
    return ModelShape(parameters, len(blocks), int(width), int(config.vocab_size), parameters - in_blocks)


def memory_per_gpu(shape: ModelShape, job: MemoryJob) -> dict[str, float]:
    """Bytes per GPU by term (weights, gradients, optimizer, buffers, activations, logits, overhead) and total."""
    parameters = shape.parameters
    compute_bytes = 2 if job.bf16 else 4
    state = {"weights": 4.0 * parameters, "gradients": 4.0 * parameters, "optimizer": 8.0 * parameters}
    if job.parallelism == "fsdp":
        state = {name: 0.0 if job.cpu_offload else value / job.workers for name, value in state.items()}
        block = (parameters - shape.root_parameters) / max(1, shape.layers)
        buffers = compute_bytes * (2 * block + shape.root_parameters)  # unsharded: two blocks in flight, the root
    else:
        buffers = 4.0 * parameters + (2.0 * parameters if job.bf16 else 0.0)  # DDP buckets, autocast copies
    tokens = job.micro_batch_rows * job.sequence_length
    per_block = ACTIVATION_BYTES_PER_WIDTH * shape.width * tokens * (1 if job.bf16 else 2)
    if job.activation_checkpointing:
        activations = shape.layers * compute_bytes * shape.width * tokens + per_block
    else:
        activations = shape.layers * per_block
    logits = tokens * shape.vocabulary * (compute_bytes + 4 + 4)
    terms = {**state, "buffers": buffers, "activations": activations, "logits": logits}
    subtotal = sum(terms.values())
    terms["overhead"] = CONTEXT_BYTES + SLACK * subtotal
    terms["total"] = subtotal + terms["overhead"]
    return terms


def micro_batch_rows(batch_size: int, micro_batch_size: int, workers: int) -> int:
    """Rows in one forward pass on one worker: the micro-batch, else the worker's share of the batch."""
    return micro_batch_size or math.ceil(batch_size / workers)


def fitting_settings(shape: ModelShape, job: MemoryJob, gpu_bytes: float, batch_size: int) -> list[str]:
    """Settings (as --set overrides) under which the job's estimate fits `gpu_bytes`, cheapest changes first."""
    candidates: list[tuple[str, MemoryJob]] = []
    if job.parallelism == "ddp":
        candidates.append(("train.parallelism=fsdp", replace(job, parallelism="fsdp")))
    fsdp = replace(job, parallelism="fsdp")
    if not job.activation_checkpointing:
        candidates.append(("train.activation_checkpointing=true", replace(job, activation_checkpointing=True)))
        candidates.append(("train.parallelism=fsdp train.activation_checkpointing=true",
                           replace(fsdp, activation_checkpointing=True)))  # fmt: skip
    checkpointed = replace(fsdp, activation_checkpointing=True)
    rows = job.micro_batch_rows
    while rows > 1:
        rows //= 2
        candidates.append((f"train.parallelism=fsdp train.activation_checkpointing=true train.micro_batch_size={rows}",
                           replace(checkpointed, micro_batch_rows=rows)))  # fmt: skip
    for workers in (2, 4, 8, 16, 32, 64, 128):
        if workers > job.workers:
            rows = micro_batch_rows(batch_size, 0, workers) if job.micro_batch_rows else 1
            setting = replace(checkpointed, workers=workers, micro_batch_rows=min(job.micro_batch_rows, rows))
            candidates.append((f"train.parallelism=fsdp train.activation_checkpointing=true "
                               f"scaling.num_workers={workers}", setting))  # fmt: skip
    offloaded = replace(checkpointed, cpu_offload=True, micro_batch_rows=1)
    candidates.append(("train.parallelism=fsdp train.activation_checkpointing=true train.fsdp_cpu_offload=true "
                       "train.micro_batch_size=1", offloaded))  # fmt: skip
    return [name for name, candidate in candidates if memory_per_gpu(shape, candidate)["total"] <= gpu_bytes][:3]


def describe(terms: dict[str, float]) -> str:
    """'total 23.1 GiB (weights 4.0, gradients 4.0, ...)'."""
    parts = ", ".join(f"{name} {value / GIB:.1f}" for name, value in terms.items() if name != "total")
    return f"{terms['total'] / GIB:.1f} GiB per GPU ({parts} GiB)"


def check_fits(shape: ModelShape, job: MemoryJob, gpu_bytes: float, batch_size: int, where: str) -> dict[str, float]:
    """The estimate; raises ValueError with the numbers and the settings that would fit when it does not."""
    terms = memory_per_gpu(shape, job)
    if terms["total"] <= gpu_bytes:
        return terms
    fits = fitting_settings(shape, job, gpu_bytes, batch_size)
    options = [" ".join(f"--set {override}" for override in fit.split()) for fit in fits]
    advice = ("; it would fit with " + ", or ".join(options)) if fits else (
        "; no setting tried fits: use GPUs with more memory")  # fmt: skip
    raise ValueError(
        f"memory preflight: the job needs about {describe(terms)} with train.parallelism={job.parallelism}, "
        f"{job.workers} worker(s), {job.micro_batch_rows} rows of {job.sequence_length} tokens per forward pass, "
        f"{'bf16' if job.bf16 else 'fp32'}, activation checkpointing {'on' if job.activation_checkpointing else 'off'}"
        f"; {where} has {gpu_bytes / GIB:.0f} GiB per GPU{advice}"
    )


def instance_gpu_memory_gib(instance_type: str) -> float | None:
    """GPU memory per GPU of a cloud instance type ("p4d.24xlarge", "a2-ultragpu-8g"), None when unknown."""
    family = instance_type.split(".")[0]
    if family in GPU_MEMORY_GIB_BY_INSTANCE:
        return float(GPU_MEMORY_GIB_BY_INSTANCE[family])
    prefix = instance_type.rsplit("-", 1)[0]
    return float(GPU_MEMORY_GIB_BY_INSTANCE[prefix]) if prefix in GPU_MEMORY_GIB_BY_INSTANCE else None


TABLE_WORKERS = (1, 2, 4, 8, 16, 32)


def memory_table(shape: ModelShape, job: MemoryJob, batch_size: int, micro_batch_size: int) -> str:
    """GiB per GPU for ddp and fsdp, with and without activation checkpointing, over worker counts (markdown)."""
    workers = sorted({*TABLE_WORKERS, job.workers})
    lines = ["| parallelism | activation checkpointing | " + " | ".join(f"{count} workers" for count in workers) + " |",
             "|---|---|" + "---:|" * len(workers)]  # fmt: skip
    for parallelism in ("ddp", "fsdp"):
        for checkpointing in (False, True):
            cells = []
            for count in workers:
                rows = micro_batch_rows(batch_size, micro_batch_size, count)
                setting = replace(job, parallelism=parallelism, activation_checkpointing=checkpointing,
                                  workers=count, micro_batch_rows=rows)  # fmt: skip
                total = memory_per_gpu(shape, setting)["total"] / GIB
                cells.append(f"**{total:.1f}**" if setting == job else f"{total:.1f}")
            lines.append(f"| {parallelism} | {'on' if checkpointing else 'off'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
