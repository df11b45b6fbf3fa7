"""Launching training on Ray: connect, the TorchTrainer driver, and the worker entry point.

Role in the flow: cli/demo/tune/jobs -> **launch** -> loop. `run_training(config)`, the driver of
`skillit-ray train`: checks everything that can be checked without a cluster (skills, graph shape,
checkpoint compatibility), connects to Ray (`connect_ray`), starts the sampler actor, runs
`TorchTrainer.fit()` with `train_loop_per_worker` on every worker, prints progress lines, and writes the
run's summary (`outputs.py`). `train_loop_per_worker` (pickled by reference: it lives in an importable
module) builds this worker's context, sampler client, metrics sink (rank 0 writes the run directory)
and callbacks (Ray Train's report; fault injection when its variables are set), then runs the loop
from the newest verified checkpoint. The in-process runner is `local.py`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import torch

from skillit_ray.config.job import JobConfig, config_from_dict
from skillit_ray.data.source import SkillSetup
from skillit_ray.data.sources.registry import skill_datasets
from skillit_ray.data.storage import RunStorage
from skillit_ray.mixture.registry import strategy_from_config
from skillit_ray.train import checkpoint, console, distributed, faults, outputs, run_identity, tracking
from skillit_ray.train.callbacks import LoopCallback, LoopCallbacks
from skillit_ray.train.loop import training_loop
from skillit_ray.train.metrics import NullSink
from skillit_ray.train.progress import ProgressPrinter
from skillit_ray.train.resolve import resolve_run
from skillit_ray.train.sampler import ActorSamplerClient, create_sampler, sampler_actor_name

logger = logging.getLogger("skillit_ray")


LEAN_LOCAL_RAY = {"_system_config": {"enable_worker_prestart": False, "prestart_worker_first_driver": False}}
"""`run.local_ray=lean`: no idle workers started ahead of use. The dashboard stays (on 127.0.0.1): Ray
Train V2's placement-group cleaner asks the State API it serves for the controller's state, and without
it logs a failure every few seconds and cannot tell when to clean up."""

LEAN_LOCAL_ENVIRONMENT = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}
"""`run.local_ray=lean`, set in this process before the local Ray starts (its workers inherit it; a
value the user set wins): no preemption-watcher actor, which polls for node drains that a single
machine never has. Every idle Ray actor costs about 0.7% of a core (its main thread wakes every
10 ms to check signals), which on a fully used CPU comes out of the training threads
(docs/performance.md)."""

WORKER_ENVIRONMENT = {"TOKENIZERS_PARALLELISM": "false"}
"""Environment of every Ray Train worker and, on a local Ray this process starts, of every worker of
the job (Ray Data's tokenize tasks, Tune trials; a submitted job gets it from `jobs/runtime_env.yaml`).
A value set in the driver's environment wins. HF tokenizers encode on the thread that asks instead of
waking a rayon pool on every core: a worker owns `scaling.cpus_per_worker` cores, all of them torch's
(a task or a trial one core), and a batch of a few short texts encoded in parallel took 1.5x the CPU
time and woke the cores torch was running on."""


def connect_ray(config: JobConfig) -> None:
    """Join the cluster named by run.ray_address or RAY_ADDRESS, else start a local Ray (`run.local_ray`)."""
    import ray

    if ray.is_initialized():
        return
    address = config.run.ray_address or os.environ.get("RAY_ADDRESS", "")
    if address:
        ray.init(address=address, **console.ray_console_options())
        console.keep_our_root_handler()
        return
    # Local: reserve logical CPUs for the train workers plus the Ray Data read/tokenize tasks.
    needed = config.scaling.num_workers * config.scaling.cpus_per_worker + 2
    lean = config.run.local_ray == "lean"
    if lean:
        for key, value in LEAN_LOCAL_ENVIRONMENT.items():
            os.environ.setdefault(key, value)
    num_cpus = int(max(os.cpu_count() or 1, needed))
    ray.init(num_cpus=num_cpus, dashboard_host="127.0.0.1", runtime_env={"env_vars": job_environment()},
             **(LEAN_LOCAL_RAY if lean else {}), **console.ray_console_options())  # fmt: skip
    console.keep_our_root_handler()


def run_training(config: JobConfig) -> dict[str, Any]:
    """Validate, start the sampler actor, train with TorchTrainer, and write the run directory."""
    # Everything that can fail without a cluster fails here, before Ray starts.
    config, setup = resolve_run(config)
    strategy = strategy_from_config(config, setup.train_skills, setup.eval_skills)
    warn_about_first_rounds(config, setup, strategy)
    storage = RunStorage(config.run.storage_path, config.run.name)
    storage.check_reachable()
    check_gpus_are_there(config)
    fingerprint = checkpoint.config_fingerprint(config, setup)
    identity = {"fingerprint": fingerprint, "seed": config.train.seed, "steps": config.train.steps,
                "num_rounds": config.mixture.num_rounds}  # fmt: skip
    finished = run_identity.claim_run(storage, identity)
    if finished is not None:
        logger.info("run %s already finished %d steps; its outputs are untouched", config.run.name, finished["steps"])
        return finished
    completed = False
    try:
        summary = _train(config, setup, strategy, storage, fingerprint)
        completed = True
        return summary
    finally:
        run_identity.release_run(storage, identity, finished=completed)


def _train(config: JobConfig, setup: SkillSetup, strategy, storage: RunStorage, fingerprint: str) -> dict:
    """The fit of a claimed run: sampler actor, TorchTrainer, progress lines, run outputs."""
    import ray

    latest = checkpoint.find_latest_checkpoint(storage, fingerprint) if config.run.resume else None
    if not config.run.resume and checkpoint.checkpoint_directories(storage):
        raise ValueError(
            f"{storage.uri('')} already holds checkpoints and run.resume=false; choose a new run.name "
            "(nothing is overwritten)"
        )
    tracking.open_tracker_runs(config, storage)  # a bad tracking URI fails before Ray starts
    connect_ray(config)
    sampler_actor = create_sampler(config.run.name, strategy, config.train.seed)
    trainer = torch_trainer(config, setup, storage, latest)
    if latest:
        logger.info("resuming run %s from %s", config.run.name, latest)
    progress = ProgressPrinter(
        storage, config, lambda: run_identity.refresh_lease(storage), setup.train_skills,
        lambda: ray.get(sampler_actor.invoke.remote("latest_round"), timeout=10)[1],
    )  # fmt: skip
    started = time.perf_counter()
    progress.start()
    try:
        trainer.fit()
    except BaseException:
        tracking.mark_tracker_runs_failed(config, storage)
        raise
    finally:
        progress.stop()
    wall_s = time.perf_counter() - started
    stopped = ray.get(sampler_actor.stop_message.remote())
    ray.kill(sampler_actor)
    summary = outputs.write_run_outputs(storage, config, setup, wall_s, stopped)
    tracking.finish_tracker_runs(config, storage, finished=not stopped)
    if stopped:  # not finished: a re-run resumes from the last checkpoint instead of skipping
        raise ValueError(f"run {config.run.name}: {stopped} (outputs so far in {storage.uri('')})")
    return summary


def check_gpus_are_there(config: JobConfig) -> None:
    """scaling.use_gpu on a local run needs a CUDA GPU here: refuse now instead of waiting forever for one."""
    if config.scaling.use_gpu and not (config.run.ray_address or os.environ.get("RAY_ADDRESS")):
        if not torch.cuda.is_available():
            raise ValueError(
                "scaling.use_gpu=true but this machine has no CUDA GPU (torch.cuda.is_available() is False) and no "
                "Ray cluster is named (run.ray_address / RAY_ADDRESS): set scaling.use_gpu=false or submit the job "
                "to a GPU cluster"
            )


def warn_about_first_rounds(config: JobConfig, setup: SkillSetup, strategy) -> None:
    """Log the graph warning (collapse or practically stratified) for a Skill-it run whose graph.json
    recorded the loss scale of the graph runs."""
    from skillit_ray.graph.files import load_initial_losses
    from skillit_ray.mixture.first_rounds import mixture_warning
    from skillit_ray.mixture.strategies.skillit import SkillItMixture

    if not isinstance(strategy, SkillItMixture) or not config.mixture.graph_path.endswith(".json"):
        return
    losses = load_initial_losses(config.mixture.graph_path)
    if losses is not None and losses.shape == (strategy.graph.shape[1],):
        advice = mixture_warning(
            strategy.graph, losses, strategy.eta, strategy.window, strategy.reduce, setup.train_skills
        )
        if advice:
            logger.warning(advice)


def torch_trainer(config: JobConfig, setup: SkillSetup, storage: RunStorage, resume_checkpoint: str | None):
    """The TorchTrainer of a run: scaling, backend, storage, checkpoint keeping and retries from the config."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    scaling = config.scaling
    datasets = skill_datasets(config, setup)  # one streaming_split per skill, when the source is read that way
    splitting = {"datasets": datasets, "dataset_config": ray.train.DataConfig(datasets_to_split="all")}
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "config": config.to_dict(),
            "setup": setup.to_dict(),
            "sampler_name": sampler_actor_name(config.run.name),
            "resume_checkpoint": resume_checkpoint,
            "split_skills": list(datasets),
        },
        **(splitting if datasets else {}),
        torch_config=TorchConfig(backend=scaling.resolved_torch_backend()),
        scaling_config=ray.train.ScalingConfig(
            num_workers=scaling.num_workers,
            use_gpu=scaling.use_gpu,
            resources_per_worker={
                "CPU": scaling.cpus_per_worker,
                **({"GPU": scaling.gpus_per_worker} if scaling.use_gpu else {}),
            },
        ),
        run_config=ray.train.RunConfig(
            name=checkpoint.next_fit_name(storage),
            storage_path=storage.uri(""),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=config.run.num_checkpoints_to_keep),
            failure_config=ray.train.FailureConfig(max_failures=config.run.max_failures),
            worker_runtime_env={"env_vars": worker_environment()},
            logging_config=ray.train.LoggingConfig(log_level=console.ray_log_level()),
        ),
    )


def job_environment() -> dict[str, str]:
    """`WORKER_ENVIRONMENT`, the driver's own values winning: a local Ray's job-wide environment."""
    return {key: os.environ.get(key, value) for key, value in WORKER_ENVIRONMENT.items()}


def worker_environment() -> dict[str, str]:
    """A Train worker's environment: `job_environment()` and the fault-injection variables that are set."""
    environment = job_environment()
    environment.update({key: os.environ[key] for key in faults.ENVIRONMENT_VARIABLES if key in os.environ})
    return environment


# ----------------------------------------------------------------------------- the worker entry point


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point: this worker's context, sampler client, metrics and callbacks, then the loop
    from a verified checkpoint."""
    import ray
    import ray.train
    import ray.train.torch

    config = config_from_dict(loop_config["config"])
    setup = SkillSetup.from_dict(loop_config["setup"])
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_per_report_logs()
    context = distributed.worker_context()
    splits = {skill: ray.train.get_dataset_shard(skill) for skill in loop_config.get("split_skills", [])}
    context = dataclasses.replace(context, dataset_splits=splits)
    distributed.log_rank0(
        context, "worker group: %d worker(s), device %s, %d torch threads per worker",
        context.world_size, context.device, torch.get_num_threads(),
    )  # fmt: skip
    actor = ray.get_actor(loop_config["sampler_name"])
    storage = RunStorage(config.run.storage_path, config.run.name)
    sink = tracking.tracking_sink(config, setup, storage) if context.rank == 0 else NullSink()

    def kill_sampler() -> None:
        os.kill(ray.get(actor.process_id.remote()), signal.SIGKILL)

    def prepare_model(model: torch.nn.Module) -> torch.nn.Module:
        return ray.train.torch.prepare_model(model, move_to_device=False)

    def run(directory: str | None):
        callbacks = [RayTrainReport(), *faults.from_environment(directory is None, context.rank, kill_sampler)]
        return training_loop(
            config, setup, context, ActorSamplerClient(actor), sink, LoopCallbacks(callbacks), directory, prepare_model,
            export_to=storage if config.train.export_model else None,
        )  # fmt: skip

    fit = ray.train.get_context().get_experiment_name()
    try:
        run_from_verified_checkpoint(run, loop_config.get("resume_checkpoint"), context, storage, fit)
    finally:
        sink.close()


class RayTrainReport(LoopCallback):
    """Every evaluation and checkpoint point reported to Ray Train (every rank; the checkpoint from rank 0)."""

    def on_report(self, step: int, metrics: dict[str, Any], checkpoint_directory: str | None) -> None:
        import ray.train

        checkpoint = ray.train.Checkpoint.from_directory(checkpoint_directory) if checkpoint_directory else None
        # one name on every rank: Ray Train merges the ranks' directories of a sharded checkpoint into it
        name = f"checkpoint_{step:08d}" if checkpoint else None
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=name)


def run_from_verified_checkpoint(
    run, resume_checkpoint: str | None, context: distributed.WorkerContext, storage: RunStorage, fit: str
):
    """`run(directory)` from the first whole checkpoint of: the newest of this fit on storage (a retry;
    it can be newer than Ray Train's latest, whose controller registers a report only after the worker
    has written it, so a worker killed in between would replay more), Ray Train's latest of this fit,
    the driver's choice (a new fit); `run(None)` when there is none. Every fit is a fresh Ray Train run,
    so nothing else is restored, and the log names what really was."""
    import ray.train

    in_this_fit = checkpoint.newest_whole_checkpoint(storage, fit)
    candidates = [ray.train.Checkpoint(storage.uri(in_this_fit[1]))] if in_this_fit else []
    candidates.append(ray.train.get_checkpoint())
    if resume_checkpoint:
        candidates.append(ray.train.Checkpoint(resume_checkpoint))
    for candidate in [candidate for candidate in candidates if candidate is not None]:
        with candidate.as_directory() as directory:
            reason = checkpoint.verify_checkpoint(RunStorage.at(Path(directory).parent), Path(directory).name)
            if reason is not None:
                logger.warning("skipping checkpoint %s: %s", candidate.path, reason)
                continue
            distributed.log_rank0(context, "restoring the checkpoint at %s", candidate.path)
            return run(directory)
    return run(None)


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
