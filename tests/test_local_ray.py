"""A run's own local Ray is lean: no idle workers started ahead of use, no preemption-watcher actor,
and it still runs Ray Train without errors in its log (`run.local_ray=lean`, the default; "full" is
Ray's defaults). The dashboard stays: without it Ray Train's placement-group cleaner logs a State API
failure every few seconds. Train workers, and every other worker of a local Ray's job, tokenize
without a rayon pool unless the user says otherwise.

Runs in a fresh Python process (the test session's shared Ray would be joined instead); the process
ends its Ray with `ray.shutdown()`. Slow (a second local Ray): `make test-slow`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import json, os, sys
import ray
import psutil  # Ray's vendored copy, on the path once ray is imported
from skillit_ray.config.job import load_config
from skillit_ray.train.launch import connect_ray, run_training
config = load_config(None, sys.argv[1:])
connect_ray(config)
names = sorted(process.name() for process in psutil.Process().children(recursive=True))
read_variable = ray.remote(lambda: os.environ.get("TOKENIZERS_PARALLELISM"))
task_tokenizer_parallelism = ray.get(read_variable.remote())
summary = run_training(config)
from ray.util.state import list_actors
address = ray.get_runtime_context().gcs_address  # named: the test session may run a Ray of its own
classes = sorted({actor.class_name for actor in list_actors(address=address, limit=1000)})  # dead ones too
ray.shutdown()
print(json.dumps({"processes": names, "steps": summary["steps"], "actor_classes": classes,
                  "task_tokenizer_parallelism": task_tokenizer_parallelism}))
"""


@pytest.mark.slow  # 42 s: a second local Ray with its dashboard; the default suite stays under 10 minutes
def test_a_lean_local_ray_starts_no_idle_workers_and_trains_with_a_clean_log(tmp_path):
    overrides = ["data.lego.num_variables=3", "train.steps=4", "train.batch_size=4", "train.eval_every_n_steps=4",
                 "mixture.strategy=stratified", "mixture.num_rounds=1", "scaling.cpus_per_worker=1",
                 f"run.storage_path={tmp_path}", "data.num_val_per_skill=4"]  # fmt: skip
    environment = {key: value for key, value in os.environ.items() if key != "TOKENIZERS_PARALLELISM"}
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, *overrides],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=environment,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["steps"] == 4
    assert "ray::IDLE" not in result["processes"]
    assert "TrainController" in result["actor_classes"] and "PreemptionWatcher" not in result["actor_classes"]
    assert "State API may be temporarily unavailable" not in completed.stdout + completed.stderr
    assert result["task_tokenizer_parallelism"] == "false"  # every worker of the job: Ray Data tasks, Tune trials


def test_train_workers_tokenize_on_the_asking_thread_unless_the_user_says_otherwise(monkeypatch):
    from skillit_ray.train.faults import ENVIRONMENT_VARIABLES, FAIL_AT_STEP_VARIABLE
    from skillit_ray.train.launch import job_environment, worker_environment

    for key in ("TOKENIZERS_PARALLELISM", *ENVIRONMENT_VARIABLES):
        monkeypatch.delenv(key, raising=False)
    assert worker_environment() == job_environment() == {"TOKENIZERS_PARALLELISM": "false"}
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true")
    monkeypatch.setenv(FAIL_AT_STEP_VARIABLE, "3")
    assert worker_environment() == {"TOKENIZERS_PARALLELISM": "true", FAIL_AT_STEP_VARIABLE: "3"}
    assert job_environment() == {"TOKENIZERS_PARALLELISM": "true"}  # faults reach the Train workers only
