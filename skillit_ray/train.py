"""Training: the per-worker loop (Ray Train DDP) and the driver that wires TorchTrainer to the sampler.

Role in the flow: config -> skills -> data -> sampler -> **train** (-> evaluate, checkpoint) -> report.

`training_loop` reads top to bottom: build -> restore -> evaluate at step 0 -> for each step:
[1] at a round start, fetch the round's mixture from the sampler (once per round, never per step),
[2] assemble this rank's batch from the exact per-skill quotas (for the sample-level curriculum:
the round's paced positions of a pool scored once by the initial model), [3] forward/backward/step
(no device sync: the loss is read back only at log points),
[4] every `eval_every_n_steps` and at every round end, evaluate per skill (sharded over ranks,
all-reduced) and report to the sampler and to Ray Train, [5] checkpoint at round ends (or every N
steps). The same function runs inside a Ray Train worker (`train_loop_per_worker`) and, with a local
sampler and one process, inside a Ray Tune trial (`skillit_ray.tune`).

`run_training(config)` is the driver: it validates everything that can be checked without a
cluster (skills, graph shape, checkpoint compatibility), starts the sampler actor, runs
`TorchTrainer.fit()`, prints a progress line per round, and writes the run directory
(`mixture.jsonl`, `metrics.jsonl`, `summary.json`, plots).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from skillit_ray import checkpoint, distributed, outputs
from skillit_ray.config import JobConfig, config_from_dict
from skillit_ray.data import (
    BatchAssembler,
    CurriculumPool,
    SkillSetup,
    labels_for,
    load_skill_tokenizer,
    load_validation_sets,
)
from skillit_ray.evaluate import evaluate_skills, score_pool
from skillit_ray.mixture import (
    MixtureStrategy,
    build_strategy,
    curriculum_pool_skills,
    curriculum_round_indices,
    full_graph_columns,
    paper_binary_graph,
    rank_row_range,
    round_quotas,
    round_skill_schedule,
    split_quotas_across_ranks,
)
from skillit_ray.model import build_model
from skillit_ray.storage import RunStorage

logger = logging.getLogger("skillit_ray")

UNTIMED_WARMUP_STEPS = 5
"""Steps after a (re)start left out of the run's tokens/s, like the warm-up of the plain-PyTorch
reference in `skillit_ray.benchmark` (torch.compile and the first Ray Data blocks land there)."""

FAIL_AT_STEP_VARIABLE = "SKILLIT_RAY_FAIL_AT_STEP"
"""Fault injection for tests and failure drills: every worker of a run that did not start from a
checkpoint raises at this step; the restored run (Ray Train retry or a later resume) goes on."""


# ----------------------------------------------------------------------------- pure helpers


def evaluation_steps(config: JobConfig) -> list[int]:
    """Steps (counted in completed optimizer steps) after which every rank evaluates.

    Step 0 (before training: curricula rank skills by it, Skill-it's history starts with it), every
    `eval_every_n_steps`, every round end (so each round's update sees fresh losses), and the last.
    """
    train, rounds = config.train, config.mixture.num_rounds
    steps = {0, train.steps}
    steps.update(range(train.eval_every_n_steps, train.steps + 1, train.eval_every_n_steps))
    steps.update(train.steps_in_round(round_index, rounds)[1] for round_index in range(rounds))
    return sorted(steps)


def checkpoint_steps(config: JobConfig) -> list[int]:
    train, rounds = config.train, config.mixture.num_rounds
    if train.checkpoint_every_n_steps:
        steps = set(range(train.checkpoint_every_n_steps, train.steps + 1, train.checkpoint_every_n_steps))
    else:
        steps = {train.steps_in_round(round_index, rounds)[1] for round_index in range(rounds)}
    return sorted(steps | {train.steps})


def resolve_graph(config: JobConfig, setup: SkillSetup) -> np.ndarray | None:
    """The k x m skills graph for this run's skills and setting, or None (identity default)."""
    mixture = config.mixture
    if mixture.graph_path:
        from skillit_ray.graph import load_graph

        columns = setup.eval_skills
        if mixture.setting == "finetuning" and mixture.graph_path.endswith(".npy"):
            square = np.load(mixture.graph_path).shape == (len(setup.train_skills),) * 2
            columns = setup.train_skills if square else columns  # a full k x k graph: take targets below
        graph = load_graph(mixture.graph_path, setup.train_skills, columns)
    elif mixture.graph:
        graph = np.asarray(mixture.graph, dtype=np.float64)
    else:
        return None
    num_train, num_eval = len(setup.train_skills), len(setup.eval_skills)
    if mixture.setting == "finetuning" and graph.shape == (num_train, num_train) and num_eval != num_train:
        graph = full_graph_columns(graph, setup.train_skills, setup.eval_skills)
    if graph.shape != (num_train, num_eval):
        source = mixture.graph_path or "mixture.graph"
        raise ValueError(
            f"skills graph {source} has shape {graph.shape} but this run has {num_train} training skills "
            f"{setup.train_skills} (rows) and {num_eval} evaluation skills {setup.eval_skills} (columns)"
        )
    if mixture.graph_preprocessing == "paper_binary":
        graph = paper_binary_graph(graph)
    return graph


def make_strategy(config: JobConfig, setup: SkillSetup) -> MixtureStrategy:
    mixture = config.mixture
    return build_strategy(
        mixture.strategy,
        setting=mixture.setting,
        num_train_skills=len(setup.train_skills),
        num_eval_skills=len(setup.eval_skills),
        graph=resolve_graph(config, setup),
        eta=mixture.eta,
        window=mixture.window,
        loss_reduction=mixture.loss_reduction,
        num_rounds=mixture.num_rounds,
        proportions=mixture.proportions,
        prior=mixture.prior,
        mixing_fraction=mixture.mixing_fraction,
    )


SAMPLE_CURRICULA = ("curriculum", "anticurriculum")


def build_curriculum_pool(config: JobConfig, setup: SkillSetup, tokenizer) -> CurriculumPool | None:
    """The scored pool of a sample-level (anti)curriculum run, else None (unscored until step 0)."""
    if config.mixture.strategy not in SAMPLE_CURRICULA:
        return None
    pool_size = config.mixture.curriculum_pool_size or config.train.steps * config.train.batch_size
    proportions = make_strategy(config, setup).weights_for_round(0)
    return CurriculumPool(setup, tokenizer, config, curriculum_pool_skills(proportions, pool_size, config.train.seed))


def curriculum_schedules(config: JobConfig, pool: CurriculumPool) -> list[np.ndarray]:
    """Pool positions each round trains on, in order (pacing of `mixture.curriculum_round_indices`)."""
    train, mixture = config.train, config.mixture
    round_bounds = [train.steps_in_round(round_index, mixture.num_rounds) for round_index in range(mixture.num_rounds)]
    round_lengths = [end - start for start, end in round_bounds]
    selections = curriculum_round_indices(
        pool.losses,
        num_rounds=mixture.num_rounds,
        samples_per_round=max(round_lengths) * train.batch_size,
        num_epochs=mixture.curriculum_num_epochs,
        seed=train.seed,
        anticurriculum=mixture.strategy == "anticurriculum",
    )
    return [selection[: length * train.batch_size] for selection, length in zip(selections, round_lengths)]


def config_fingerprint(config: JobConfig, setup: SkillSetup) -> str:
    """Hash of what a checkpoint must share with the run resuming it (not steps, workers or storage)."""
    relevant = {
        "skills": [setup.train_skills, setup.eval_skills],
        "data": [config.data.source, config.data.sequence_length, config.data.pack_sequences],
        "model": [config.model.size, config.model.overrides],
        "mixture": {k: v for k, v in config.to_dict()["mixture"].items() if k != "graph_path"},
        "seed": config.train.seed,
        "batch_size": config.train.batch_size,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


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


# ----------------------------------------------------------------------------- sampler access


class SamplerClient(Protocol):
    def get_round(self, round_index: int, num_evaluations_expected: int) -> dict[str, Any]: ...
    def report_evaluation(self, step: int, val_loss: list[float], accuracy: list[float] | None) -> int: ...
    def report_round(
        self, round_index: int, step: int, achieved_counts: list[int], num_ranks_agreeing: int
    ) -> None: ...
    def report_train(self, records: list[dict[str, Any]]) -> None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class ActorSamplerClient:
    """Blocking calls to the sampler actor (one round trip per round or evaluation)."""

    def __init__(self, actor) -> None:
        self.actor = actor

    def __getattr__(self, name: str):
        import ray

        method = getattr(self.actor, name)
        return lambda *arguments: ray.get(method.remote(*arguments))


Reporter = Any  # callable(metrics: dict, checkpoint_directory: str | None) -> None


# ----------------------------------------------------------------------------- the loop


@dataclass
class LoopResult:
    step: int
    tokens_per_s: float
    train_wall_s: float
    batch_assembly_s: float


def training_loop(
    config: JobConfig,
    setup: SkillSetup,
    context: distributed.WorkerContext,
    sampler: SamplerClient,
    report: Reporter,
    checkpoint_directory: str | None,
    prepare_model=None,
) -> LoopResult:
    """Train one worker's share; identical on every rank except the data it reads."""
    train, rounds = config.train, config.mixture.num_rounds
    world_size, rank = context.world_size, context.rank
    distributed.seed_everything(train.seed)

    # Build ------------------------------------------------------------------
    tokenizer = load_skill_tokenizer(setup)
    model = build_model(
        config.model.size,
        vocab_size=len(tokenizer),
        max_sequence_length=config.data.sequence_length,
        pretrained_path=config.model.pretrained_path,
        overrides=config.model.overrides,
    ).to(context.device)
    optimizer = build_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(step, config))
    assembler = BatchAssembler(config, setup, tokenizer, rank, world_size)
    pool = build_curriculum_pool(config, setup, tokenizer)
    validation_sets = load_validation_sets(config, setup, tokenizer)
    eval_at = evaluation_steps(config)
    checkpoint_at = set(checkpoint_steps(config))

    autocast_bf16 = context.device.type == "cuda" and train.precision in ("auto", "bf16")

    # Restore ----------------------------------------------------------------
    start_step = 0
    if checkpoint_directory is not None:
        start_step = checkpoint.restore(
            checkpoint_directory, model, optimizer, scheduler, assembler, sampler, context, pool
        )
    if pool is not None and pool.losses is None:
        # the sample-level curriculum orders its pool by the initial model's per-sample loss
        scoring_started = time.perf_counter()
        pool.losses = score_pool(model, tokenizer, pool, context, autocast_bf16)
        distributed.log_rank0(
            context, "curriculum: scored %d pool samples with the initial model in %.1f s",
            len(pool), time.perf_counter() - scoring_started,
        )  # fmt: skip
    pool_schedules = curriculum_schedules(config, pool) if pool is not None else None
    training_model = prepare_model(model) if prepare_model else model
    if train.compile:
        training_model = torch.compile(training_model)

    def evaluate_and_report(step: int, round_record: tuple | None = None) -> None:
        val_loss, accuracy = evaluate_skills(model, tokenizer, validation_sets, context, autocast_bf16)
        if rank == 0:
            sampler.report_evaluation(step, val_loss, accuracy)
            sampler.report_train(pending_train_records)
            if round_record is not None:
                sampler.report_round(*round_record)
        pending_train_records.clear()
        distributed.barrier()  # every rank sees this evaluation in the sampler before the next round
        metrics = {"step": step, "mean_val_loss": float(np.mean(val_loss)), "val_loss": val_loss}
        if accuracy is not None:
            metrics["mean_accuracy"] = float(np.mean(accuracy))
            metrics["accuracy"] = accuracy
        checkpoint_now = step in checkpoint_at and step > start_step
        report(metrics, save_checkpoint(step) if checkpoint_now else None)

    def save_checkpoint(step: int) -> str | None:
        return checkpoint.write_checkpoint(
            step, model, optimizer, scheduler, assembler, sampler, context, loop_fingerprint,
            pool_losses=pool.losses if pool is not None else None,
        )  # fmt: skip

    loop_fingerprint = config_fingerprint(config, setup)
    fail_at_step = int(os.environ[FAIL_AT_STEP_VARIABLE]) if os.environ.get(FAIL_AT_STEP_VARIABLE) else None
    pending_train_records: list[dict[str, Any]] = []
    if start_step == 0:
        evaluate_and_report(0)

    # Loop -------------------------------------------------------------------
    current_round, schedule, round_achieved = -1, None, np.zeros(len(setup.train_skills), dtype=np.int64)
    timer = TrainingTimer(context.device)
    tokens_per_step = train.batch_size * config.data.sequence_length  # global sequence positions
    # throughput leaves out the first steps after a (re)start: compilation, allocator and stream warm-up
    untimed_steps = min(UNTIMED_WARMUP_STEPS, max(0, train.steps - start_step - 1))
    assembly_seconds, last_log = 0.0, (start_step, 0.0)
    for step in range(start_step, train.steps):
        round_index = train.round_of_step(step, rounds)
        round_start, round_end = train.steps_in_round(round_index, rounds)
        if round_index != current_round:
            # [1] once per round: the sampler's mixture, identical on every rank
            expected = sum(1 for eval_step in eval_at if eval_step <= round_start)
            published = sampler.get_round(round_index, expected)
            # the actor publishes once per round; check every rank really holds the same mixture
            weights_by_rank = distributed.all_gather_objects(published["weights"])
            if any(weights != weights_by_rank[0] for weights in weights_by_rank):
                raise RuntimeError(f"ranks received different mixtures for round {round_index}: {weights_by_rank}")
            if pool_schedules is None:
                # the round's samples as a shuffled sequence of skill indices with exact quotas
                quotas = round_quotas(published["weights"], (round_end - round_start) * train.batch_size)
                schedule = round_skill_schedule(quotas, published["seed"], round_index)
            else:  # sample-level curriculum: the round's pool positions, paced by initial loss
                schedule = pool_schedules[round_index]
            current_round = round_index
            round_achieved = np.zeros(len(setup.train_skills), dtype=np.int64)
            if step > round_start:  # resumed mid-round: recount what the earlier steps of the round took
                for done in range(round_start, step):
                    counts_by_rank, positions = step_share(schedule, done - round_start, pool, setup, train, context)
                    round_achieved += counts_by_rank[rank] if positions is None else pool.skill_counts(positions)

        # [2] this rank's batch from the exact quotas of this step
        if step == start_step + untimed_steps:
            timer.reset()
            assembly_seconds, last_log = 0.0, (step, 0.0)
        timer.start()
        step_started = time.perf_counter()
        counts_by_rank, positions = step_share(schedule, step - round_start, pool, setup, train, context)
        if positions is None:
            input_ids, achieved = assembler.next_batch(counts_by_rank, step)
        else:
            input_ids, achieved = pool.batch(positions, step, rank)
        assembly_seconds += time.perf_counter() - step_started
        round_achieved += achieved

        if fail_at_step is not None and step == fail_at_step and checkpoint_directory is None:
            raise RuntimeError(f"injected failure at step {step} ({FAIL_AT_STEP_VARIABLE} is set)")
        # [3] forward / backward / step with exact global token normalization
        loss_sum, global_tokens = train_step(
            training_model, optimizer, input_ids, tokenizer.pad_token_id, config, context, autocast_bf16
        )
        scheduler.step()
        completed = step + 1
        if completed % train.log_every_n_steps == 0 or completed == train.steps:
            # the only per-interval host sync of the step loop: the global loss of this step
            loss_value = global_mean_loss(loss_sum, global_tokens)
            seconds = timer.elapsed()
            record = {
                "kind": "train",
                "step": completed,
                "train_loss": loss_value,
                "learning_rate": scheduler.get_last_lr()[0],
                "tokens_per_s": (completed - last_log[0]) * tokens_per_step / max(seconds - last_log[1], 1e-9),
            }
            pending_train_records.append(record)
            last_log = (completed, seconds)

        # [4] round end: achieved counts, summed over ranks, go into the round's record (the round's
        # closing evaluation runs first, so the record carries the losses the next round will use)
        if completed == round_end:
            totals = distributed.all_reduce_sum(torch.as_tensor(round_achieved, dtype=torch.int64)).tolist()
            round_record = (round_index, completed, totals, len(weights_by_rank))
        # [5] evaluation (and checkpoint) points; every round end is one
        if completed in eval_at:
            timer.stop()  # evaluation is not training time
            last_log = (last_log[0], timer.elapsed())
            evaluate_and_report(completed, round_record if completed == round_end else None)
    timer.stop()
    tokens_per_s = (train.steps - start_step - untimed_steps) * tokens_per_step / max(timer.elapsed(), 1e-9)
    return LoopResult(
        step=train.steps, tokens_per_s=tokens_per_s, train_wall_s=timer.elapsed(), batch_assembly_s=assembly_seconds
    )


class TrainingTimer:
    """Wall time of the training steps without a device sync per step.

    The clock runs from the first step after an evaluation to the next evaluation and stops only
    once the device has finished the queued work, so asynchronous CUDA execution is neither hidden
    nor stalled (a per-step `cuda.synchronize` would stop the host from preparing the next batch).
    """

    def __init__(self, device: torch.device) -> None:
        self.device, self.total_s, self.started = device, 0.0, None

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def start(self) -> None:
        if self.started is None:
            self._synchronize()
            self.started = time.perf_counter()

    def stop(self) -> None:
        if self.started is not None:
            self._synchronize()
            self.total_s += time.perf_counter() - self.started
            self.started = None

    def reset(self) -> None:
        self.stop()
        self.total_s = 0.0

    def elapsed(self) -> float:
        """Seconds so far (call after a host sync for an exact figure while running)."""
        return self.total_s + (time.perf_counter() - self.started if self.started is not None else 0.0)


def step_share(schedule, step_in_round, pool, setup, train, context) -> tuple[np.ndarray | None, np.ndarray | None]:
    """One step of the round's schedule, split over ranks.

    Quota schedules (skill indices): (per-rank per-skill counts, None); every rank needs all rows to
    advance the streams' global positions. Curriculum schedules (pool positions): (None, this rank's
    pool positions).
    """
    step_entries = schedule[step_in_round * train.batch_size :][: train.batch_size]
    if pool is None:
        return split_quotas_across_ranks(step_entries, len(setup.train_skills), context.world_size), None
    first, last = rank_row_range(len(step_entries), context.world_size, context.rank)
    return None, step_entries[first:last]


def global_mean_loss(loss_sum: torch.Tensor, global_tokens: float) -> float:
    """The step's mean token loss over the global batch from each rank's summed token loss (syncs)."""
    return float(distributed.all_reduce_sum(loss_sum.double().cpu().reshape(1)).item() / max(global_tokens, 1.0))


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
    local_tokens = (labels[:, 1:] != -100).sum()
    global_tokens = distributed.all_reduce_sum(local_tokens.to(torch.float64).reshape(1)).item()
    micro = config.train.micro_batch_size or max(1, len(inputs))
    chunks = list(range(0, len(inputs), micro)) or [0]
    optimizer.zero_grad(set_to_none=True)
    loss_sum = torch.zeros((), dtype=torch.float32, device=context.device)
    for index, start in enumerate(chunks):
        chunk_inputs = inputs[start : start + micro].to(context.device, non_blocking=True)
        chunk_labels = labels[start : start + micro].to(context.device, non_blocking=True)
        last = index == len(chunks) - 1
        sync_context = model.no_sync() if (not last and hasattr(model, "no_sync")) else _null_context()
        with sync_context:
            with torch.autocast(device_type=context.device.type, dtype=torch.bfloat16, enabled=autocast_bf16):
                logits = model(input_ids=chunk_inputs).logits
            token_losses = torch.nn.functional.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.size(-1)),
                chunk_labels[:, 1:].reshape(-1),
                ignore_index=-100,
                reduction="sum",
            )
            (token_losses * context.world_size / max(global_tokens, 1.0)).backward()
        loss_sum += token_losses.detach()
    if config.train.grad_clip_norm:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip_norm)
    optimizer.step()
    return loss_sum, global_tokens


class _null_context:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point (pickled by reference: it lives in an importable module)."""
    import ray
    import ray.train
    import ray.train.torch

    config = config_from_dict(loop_config["config"])
    setup = SkillSetup.from_dict(loop_config["setup"])
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_per_report_logs()
    context = distributed.worker_context()
    distributed.log_rank0(
        context, "worker group: %d worker(s), device %s, %d torch threads per worker",
        context.world_size, context.device, torch.get_num_threads(),
    )  # fmt: skip
    sampler = ActorSamplerClient(ray.get_actor(loop_config["sampler_name"]))

    def report(metrics: dict[str, Any], checkpoint_directory: str | None) -> None:
        checkpoint = ray.train.Checkpoint.from_directory(checkpoint_directory) if checkpoint_directory else None
        ray.train.report(metrics, checkpoint=checkpoint)

    # A retry inside this fit restores Ray Train's latest checkpoint; a new fit of an existing run
    # starts from the newest compatible checkpoint that the driver found (Train V2 has no
    # resume_from_checkpoint).
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None and loop_config.get("resume_checkpoint"):
        checkpoint = ray.train.Checkpoint(loop_config["resume_checkpoint"])
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            result = _run(config, setup, context, sampler, report, directory)
    else:
        result = _run(config, setup, context, sampler, report, None)
    if context.rank == 0:
        throughput = {"kind": "throughput", "step": result.step, "tokens_per_s": result.tokens_per_s}
        throughput.update(train_step_s=result.train_wall_s, batch_assembly_s=result.batch_assembly_s)
        sampler.report_train([throughput])


def quiet_per_report_logs() -> None:
    """Ray Train V2 logs every report and checkpoint at INFO from each worker; the driver's one line
    per round says the same, so keep only its warnings (internal logger names, hence the guard)."""
    try:
        from ray.train.v2._internal.execution import context as train_context
        from ray.train.v2._internal.execution import storage as train_storage
    except ImportError:
        return
    for name in (train_context.__file__, train_storage.__name__):
        logging.getLogger(name).setLevel(logging.WARNING)


def _run(config, setup, context, sampler, report, directory):
    import ray.train.torch

    return training_loop(
        config,
        setup,
        context,
        sampler,
        report,
        directory,
        prepare_model=lambda model: ray.train.torch.prepare_model(model, move_to_device=False),
    )


# ----------------------------------------------------------------------------- the driver


def run_training(config: JobConfig, connect=None) -> dict[str, Any]:
    """Validate, start the sampler actor, train with TorchTrainer, and write the run directory."""
    import ray
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from skillit_ray.data import resolve_skills
    from skillit_ray.sampler import create_sampler, sampler_actor_name

    # Everything that can fail without a cluster fails here, before Ray starts.
    config.validate()
    setup = resolve_skills(config)
    strategy = make_strategy(config, setup)
    fingerprint = config_fingerprint(config, setup)
    storage = RunStorage(config.run.storage_path, config.run.name)
    latest = checkpoint.find_latest_checkpoint(storage, fingerprint) if config.run.resume else None
    if not config.run.resume and storage.list_directories("checkpoint_"):
        raise ValueError(
            f"{storage.uri('')} already holds checkpoints and run.resume=false; choose a new run.name "
            "(nothing is overwritten)"
        )

    if connect is not None:
        connect()
    elif not ray.is_initialized():
        ray.init(address=config.run.ray_address or None)
    sampler_actor = create_sampler(config.run.name, strategy, config.train.seed)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "config": config.to_dict(),
            "setup": setup.to_dict(),
            "sampler_name": sampler_actor_name(config.run.name),
            "resume_checkpoint": latest,
        },
        torch_config=TorchConfig(backend=config.scaling.resolved_torch_backend()),
        scaling_config=ray.train.ScalingConfig(
            num_workers=config.scaling.num_workers,
            use_gpu=config.scaling.use_gpu,
            resources_per_worker={
                "CPU": config.scaling.cpus_per_worker,
                **({"GPU": config.scaling.gpus_per_worker} if config.scaling.use_gpu else {}),
            },
        ),
        run_config=ray.train.RunConfig(
            name=config.run.name,
            storage_path=storage.train_storage_path(),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=config.run.num_checkpoints_to_keep),
            failure_config=ray.train.FailureConfig(max_failures=config.run.max_failures),
            worker_runtime_env={
                "env_vars": {key: os.environ[key] for key in (FAIL_AT_STEP_VARIABLE,) if key in os.environ}
            },
        ),
    )
    if latest:
        logger.info("resuming run %s from %s", config.run.name, latest)
    progress = outputs.ProgressPrinter(sampler_actor, config, setup)
    started = time.perf_counter()
    progress.start()
    try:
        trainer.fit()
    finally:
        progress.stop()
    wall_s = time.perf_counter() - started
    records = ray.get(sampler_actor.records.remote())
    ray.kill(sampler_actor)
    summary = outputs.write_run_outputs(storage, config, setup, records, wall_s)
    return summary
