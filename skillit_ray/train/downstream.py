"""`skillit-ray evaluate`: a finished run's exported model scored with lm-evaluation-harness (HFLM).

Role in the flow: the run directory (`<run>/model/` from `export.py`, config.json from `outputs.py`,
tracking.json from `tracking.py`) -> **downstream** (lm-eval in this process, no Ray) -> `<run>/evaluation/`
(`lm_eval_results.json`, `summary.json`) and the run's trackers -> report (`skillit-ray compare`).

The tasks are lm-eval's own (`--tasks hellaswag`, from its task registry; their datasets must be in the
Hugging Face cache when offline), local ones (`--include-path DIR`: task YAMLs, e.g. `dataset_path: json`
over a JSONL file) and, with `--skill-tasks`, the run's evaluation skills: each skill's validation items
(the run's resolved config.json, the run's data source) written as a JSONL file and task YAML into a
temporary include directory (`lm_evaluation.write_skill_tasks`). A model on object storage is copied to a
temporary directory first. Everything that can be wrong (no model, lm-eval or a tracker's package not
installed, an unknown task, a bad flag) is refused before the model loads.

Trackers (the run's tracking.json, the sinks of its config): the metrics `lm_eval/<task>/<metric>` at the
exported model's step, and the two files, go into the same MLflow run and TensorBoard directory, and into
the W&B run's summary (`trackers.log_evaluation`).
"""

from __future__ import annotations

import importlib
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skillit_ray.config.job import JobConfig, config_from_dict
from skillit_ray.data.sources.registry import resolve_skills, source_for
from skillit_ray.data.storage import RunStorage
from skillit_ray.train import lm_evaluation, trackers
from skillit_ray.train.export import EXPORT_DIRECTORY, EXPORT_RECORD
from skillit_ray.train.tracking import read_tracker_runs

TRACKER_PACKAGES = {"mlflow": "mlflow", "tensorboard": "tensorboard", "wandb": "wandb"}
DEVICES = ("cpu", "cuda")
logger = logging.getLogger("skillit_ray")


@dataclass(frozen=True)
class EvaluateOptions:
    """What `skillit-ray evaluate` scores, and how."""

    run_directory: str
    """The run directory `<run.storage_path>/<run.name>` (local or s3:// / gs://) holding `model/`."""
    tasks: tuple[str, ...] = ()
    """lm-eval task, group or tag names (built in, or defined under `include_paths`)."""
    skill_tasks: bool = False
    """Also score the run's evaluation skills, one task `skillit_<skill>` each, on their validation items."""
    include_paths: tuple[str, ...] = ()
    """Directories of task YAMLs (lm-eval's `--include_path`)."""
    limit: int | None = None
    """At most this many documents per task (None: all)."""
    batch_size: int | str = 8
    """Documents per forward pass, or "auto" (lm-eval finds the largest that fits)."""
    device: str = ""
    """cpu or cuda; "" picks cuda when a GPU is visible."""
    bootstrap_iterations: int = 1000
    """Resamples for the standard errors of non-mean metrics (perplexity); 0 computes no standard error."""

    def __post_init__(self) -> None:
        if not self.tasks and not self.skill_tasks:
            raise ValueError("evaluate needs --tasks TASK[,TASK...] and/or --skill-tasks")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit {self.limit} must be at least 1 (leave it out to score every document)")
        if self.device and self.device not in DEVICES:
            raise ValueError(f"--device {self.device!r} must be one of {', '.join(DEVICES)}")
        if self.batch_size != "auto" and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise ValueError(f"--batch-size {self.batch_size!r} must be a positive integer or auto")
        if self.bootstrap_iterations < 0:
            raise ValueError(f"--bootstrap-iters {self.bootstrap_iterations} must be 0 or more")
        for path in self.include_paths:
            if not Path(path).is_dir():
                raise ValueError(f"--include-path {path!r} is not a directory (of lm-eval task YAMLs)")


def evaluate_run(options: EvaluateOptions) -> dict[str, Any]:
    """Score the run's exported model; write `<run>/evaluation/` and log to the run's trackers.

    Returns:
        {"summary": {task: {metric: value}}, "files": [written paths], "trackers": [names logged to]}.

    Raises:
        ValueError: No exported model, lm-eval (or a tracker's package) not installed, an unknown task, or
            `--skill-tasks` on a run without config.json or with token-id validation data.
    """
    storage = RunStorage.at(options.run_directory)
    record = _export_record(storage)
    config = _run_config(storage)
    for module in ("lm_eval", "lm_eval.models.huggingface"):  # the package, and HFLM's own imports (accelerate)
        _require_module(module, "lm-evaluation-harness", "eval")
    device = _device(options.device)
    tracker_runs = _tracker_runs(storage, config)
    items_by_skill = _skill_items(config, storage) if options.skill_tasks else {}
    with tempfile.TemporaryDirectory(prefix="skillit-evaluate-") as temporary:
        work = Path(temporary)
        include_paths = list(options.include_paths)
        tasks = list(options.tasks)
        if items_by_skill:
            tasks += lm_evaluation.write_skill_tasks(work / "skill_tasks", items_by_skill)
            include_paths.append(str(work / "skill_tasks"))
        task_manager = _task_manager(tasks, include_paths)
        model_directory = _local_model(storage, record, work / "model")
        evaluation = _run_lm_eval(options, device, model_directory, tasks, task_manager)
    summary = lm_evaluation.flatten_results(evaluation["results"])
    results_text = json.dumps(lm_evaluation.results_for_file(evaluation), indent=2, default=str) + "\n"
    directory = lm_evaluation.EVALUATION_DIRECTORY
    files = [
        storage.write_text(f"{directory}/{lm_evaluation.RESULTS_FILE}", results_text),
        storage.write_text(f"{directory}/{lm_evaluation.SUMMARY_FILE}", json.dumps(summary, indent=2) + "\n"),
    ]
    logged = _log_to_trackers(storage, config, tracker_runs, int(record.get("step", 0)), summary)
    return {"summary": summary, "files": files, "trackers": logged}


def _export_record(storage: RunStorage) -> dict[str, Any]:
    relative = f"{EXPORT_DIRECTORY}/{EXPORT_RECORD}"
    if not storage.exists(relative):
        raise ValueError(
            f"{storage.uri(EXPORT_DIRECTORY)} holds no exported model (no {EXPORT_RECORD}); train with "
            "train.export_model=true (the default) so that the run writes its final model there, or pass the "
            "directory of a run that has one"
        )
    return json.loads(storage.read_text(relative))


def _run_config(storage: RunStorage) -> JobConfig | None:
    """The run's resolved config (config.json, written when the run finished), None when absent."""
    if not storage.exists("config.json"):
        return None
    return config_from_dict(json.loads(storage.read_text("config.json")))


def _require_module(module: str, what: str, extra: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise ValueError(f"{what} is not installed ({error}): pip install 'skillit-ray[{extra}]'") from None


def _tracker_runs(storage: RunStorage, config: JobConfig | None) -> dict[str, dict[str, Any]]:
    """The run's tracker runs (tracking.json) of the sinks its config still names; their packages checked."""
    runs = read_tracker_runs(storage)
    if config is not None:
        runs = {name: identity for name, identity in runs.items() if name in config.tracking.sinks}
    if not storage.is_local:
        for name in [name for name in runs if name != "mlflow"]:
            logger.warning("the run directory is not local: the evaluation is not logged to %s", name)
            runs.pop(name)
    for name in runs:
        _require_module(TRACKER_PACKAGES[name], f"the run logged to {name} (tracking.json) but {name}", name)
    return runs


def _skill_items(config: JobConfig | None, storage: RunStorage) -> dict[str, list]:
    """Each evaluation skill's validation items, read through the run's data source as it trained."""
    if config is None:
        raise ValueError(
            f"--skill-tasks reads the run's resolved config, {storage.uri('config.json')}, which is missing "
            "(a run writes it when it finishes); evaluate a finished run, or give the tasks with --include-path"
        )
    setup = resolve_skills(config)
    source = source_for(setup)
    return {skill: source.validation_items(skill, config) for skill in setup.eval_skills}


def _task_manager(tasks: list[str], include_paths: list[str]):
    """lm-eval's task index: the include paths alone when they define every task (quick: lm-eval's own
    thousands of task YAMLs are indexed only when a task needs them)."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=include_paths or None, include_defaults=False)
    if any(task not in manager.all_tasks for task in tasks):
        manager = TaskManager(include_path=include_paths or None)
    unknown = [task for task in tasks if task not in manager.all_tasks]
    if unknown:
        raise ValueError(
            f"unknown lm-eval task(s) {unknown}: not lm-eval's own and not defined under --include-path "
            f"{include_paths or '(none)'}; `lm_eval ls tasks` lists lm-eval's own"
        )
    return manager


def _local_model(storage: RunStorage, record: dict[str, Any], staging: Path) -> Path:
    """The exported model's directory on this machine: the run's own when local, else a copy in `staging`."""
    if storage.is_local:
        return storage.local_path() / EXPORT_DIRECTORY
    for name in [*record["files"], EXPORT_RECORD]:
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(storage.read_bytes(f"{EXPORT_DIRECTORY}/{name}"))
    return staging


def _device(requested: str) -> str:
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda but torch sees no CUDA device; use --device cpu")
    return requested or ("cuda" if torch.cuda.is_available() else "cpu")


def _run_lm_eval(options: EvaluateOptions, device: str, model_directory: Path, tasks: list[str], task_manager):
    """lm-eval's results dict (`simple_evaluate`) for the model in `model_directory`."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    model = HFLM(pretrained=str(model_directory), device=device, batch_size=options.batch_size)
    evaluation = lm_eval.simple_evaluate(
        model=model, tasks=tasks, task_manager=task_manager, limit=options.limit, log_samples=False,
        bootstrap_iters=options.bootstrap_iterations,
    )  # fmt: skip
    return evaluation


def _log_to_trackers(
    storage: RunStorage, config: JobConfig | None, runs: dict[str, dict[str, Any]], step: int, summary: dict
) -> list[str]:
    """The summary's metrics (`lm_eval/<task>/<metric>`) and the evaluation's files to each tracker run."""
    if not runs:
        return []
    values = lm_evaluation.tracker_metrics(summary)
    directory = lm_evaluation.EVALUATION_DIRECTORY
    with tempfile.TemporaryDirectory(prefix="skillit-evaluation-") as temporary:
        files = []
        for name in (lm_evaluation.RESULTS_FILE, lm_evaluation.SUMMARY_FILE):
            path = Path(temporary) / name
            path.write_bytes(storage.read_bytes(f"{directory}/{name}"))
            files.append(path)
        for name, identity in runs.items():
            extra = {"run_directory": str(storage.local_path()),
                     "name": config.run.name if config is not None else storage.name,
                     "mode": config.tracking.wandb_mode if config is not None else "offline"}  # fmt: skip
            trackers.log_evaluation(name, {**identity, **extra}, step, values, files)
    return list(runs)
