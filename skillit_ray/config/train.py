"""The `train` section: the optimization loop, counted in global steps of all workers together.

Role in the flow: config -> **train section** -> train (the loop, its learning-rate schedule, round
boundaries and cadences). Derived values (a round's steps, autocast) are methods. No Ray, no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from skillit_ray.config.loading import choice, require

LR_SCHEDULES = ("linear", "cosine", "constant")
PRECISIONS = ("auto", "fp32", "bf16")
PARALLELISMS = ("ddp", "fsdp")


@dataclass
class TrainConfig:
    """The optimization loop (per global step, all workers together)."""

    steps: int = 300
    """Optimizer steps in the whole run."""
    batch_size: int = 32
    """Global batch in samples per optimizer step, summed over all workers."""
    micro_batch_size: int = 0
    """Samples per forward pass on one worker; 0 means the worker's whole share (no accumulation)."""
    learning_rate: float = 1e-3
    """Peak AdamW learning rate (official 5e-5 for pretrained 125M; from-scratch tiny models need more)."""
    warmup_steps: int = 50
    """Linear warmup steps (official 50)."""
    lr_schedule: str = "linear"
    """Decay after warmup: linear (official), cosine or constant."""
    weight_decay: float = 0.01
    """AdamW weight decay, not applied to biases and LayerNorm weights (official)."""
    grad_clip_norm: float = 1.0
    """Gradient-norm clip (official 1.0); 0 disables."""
    eval_every_n_steps: int = 25
    """Per-skill validation cadence in steps; each evaluation enters the Skill-it window."""
    checkpoint_every_n_steps: int = 0
    """Checkpoint cadence in steps; 0 means at every round boundary."""
    seed: int = 0
    """Seeds model init, data order and quota splits. Same seed, same mixture trajectory."""
    precision: str = "auto"
    """auto (bf16 autocast on GPU, fp32 on CPU), fp32, or bf16 (autocast on GPU and CPU: 1.5x faster for the
    tiny model on a CPU with AVX512-BF16, slower on CPUs without it; weights and losses stay fp32)."""
    compile: bool = False
    """torch.compile the model (GPU runs)."""
    log_every_n_steps: int = 10
    """Training-loss log cadence."""
    parallelism: str = "ddp"
    """ddp (every worker holds the whole model, gradients all-reduced: Ray Train's DDP) or fsdp (FSDP2
    `fully_shard` per transformer block and at the root: parameters, gradients and AdamW states split over
    the workers; checkpoints sharded with torch.distributed.checkpoint and resumable on another worker count)."""
    fsdp_cpu_offload: bool = False
    """fsdp only: keep the parameter, gradient and optimizer shards in CPU memory (slower, for models whose
    shards do not fit the GPUs)."""
    activation_checkpointing: bool = False
    """Recompute each transformer block's activations in the backward pass (about a third more compute for
    a fraction of the activation memory)."""
    export_model: bool = True
    """Write the final model (weights, config, tokenizer) in `save_pretrained` format to `<run>/model/` at the
    end of a run, gathered from the shards; `AutoModelForCausalLM.from_pretrained` loads it."""

    def validate(self) -> None:
        require(self.steps >= 1, f"train.steps={self.steps} must be >= 1")
        require(self.batch_size >= 1, f"train.batch_size={self.batch_size} must be >= 1")
        require(self.micro_batch_size >= 0, f"train.micro_batch_size={self.micro_batch_size} must be >= 0")
        require(
            math.isfinite(self.learning_rate) and self.learning_rate > 0,
            f"train.learning_rate={self.learning_rate} must be > 0",
        )
        require(self.warmup_steps >= 0, f"train.warmup_steps={self.warmup_steps} must be >= 0")
        choice("train.lr_schedule", self.lr_schedule, LR_SCHEDULES)
        choice("train.precision", self.precision, PRECISIONS)
        choice("train.parallelism", self.parallelism, PARALLELISMS)
        require(
            not self.fsdp_cpu_offload or self.parallelism == "fsdp",
            "train.fsdp_cpu_offload=true needs train.parallelism=fsdp",
        )
        require(self.eval_every_n_steps >= 1, f"train.eval_every_n_steps={self.eval_every_n_steps} must be >= 1")
        require(self.checkpoint_every_n_steps >= 0, "train.checkpoint_every_n_steps must be >= 0 (0: round ends)")
        require(self.grad_clip_norm >= 0, f"train.grad_clip_norm={self.grad_clip_norm} must be >= 0")
        require(self.log_every_n_steps >= 1, "train.log_every_n_steps must be >= 1")
        require(0 <= self.seed < 2**32, f"train.seed={self.seed} must be in 0..2**32-1 (numpy and torch seeds)")

    def autocast_bf16(self, device_type: str) -> bool:
        """Whether forward passes run under bf16 autocast on this device type."""
        return self.precision == "bf16" or (self.precision == "auto" and device_type == "cuda")

    def steps_in_round(self, round_index: int, num_rounds: int) -> tuple[int, int]:
        """[start, end) steps of a round: round r covers steps r*S//T .. (r+1)*S//T.

        When steps is not divisible by rounds the rounds differ by at most one step.
        """
        return (round_index * self.steps // num_rounds, (round_index + 1) * self.steps // num_rounds)

    def round_of_step(self, step: int, num_rounds: int) -> int:
        """The round a step belongs to (inverse of `steps_in_round`)."""
        return ((step + 1) * num_rounds - 1) // self.steps
