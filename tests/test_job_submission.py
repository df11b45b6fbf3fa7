"""A real `ray job submit`: a local Ray head on 127.0.0.1 in a temporary directory, the smoke job
submitted with JobSubmissionClient and a working_dir runtime_env, waited for, its outputs checked,
and only that head stopped, by the process id of its `ray start --block`. Token authentication is on,
as on our clusters.

Run: `.venv/bin/python -m pytest tests/test_job_submission.py`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

REPOSITORY = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def local_head(tmp_path, monkeypatch):
    # The default token file, which a local ray.init() creates and Ray's clients cache per process.
    token_file = Path.home() / ".ray" / "auth_token"
    if not token_file.is_file():
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.write_text(secrets.token_hex(32))
    environment = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file)}
    # SIGTERM stops the head at once: by default `ray start --block` first drains the node for up to 30 s
    environment["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
    # every port explicit: the suite's own local Ray already holds the default agent ports
    gcs_port, dashboard_port, agent_http_port, agent_grpc_port, metrics_port, runtime_env_port = (
        free_port() for _ in range(6)
    )
    ray_binary = str(Path(sys.executable).parent / "ray")
    temp_dir = Path("/tmp") / f"skillit-head-{secrets.token_hex(3)}"  # short: Unix socket paths are limited
    # --block keeps `ray start` in the foreground as the parent of the head's processes: ending it by its
    # process id stops the whole head and nothing else
    head = subprocess.Popen(
        [ray_binary, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={gcs_port}",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}", "--num-cpus=3",
         f"--dashboard-agent-listen-port={agent_http_port}", f"--dashboard-agent-grpc-port={agent_grpc_port}",
         f"--metrics-export-port={metrics_port}", f"--runtime-env-agent-port={runtime_env_port}",
         f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.setenv(key, environment[key])
    try:
        wait_for_port(dashboard_port, head)
        yield f"http://127.0.0.1:{dashboard_port}", f"127.0.0.1:{gcs_port}"
    finally:
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)


HANG_GUARD_S = 900.0
"""Only a hang guard, never a timing claim: a head that starts and a job that runs in 30 s on an idle
machine take several times that when other work shares the 2 cores."""


def wait_for_port(port: int, head: subprocess.Popen, timeout_s: float = HANG_GUARD_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start --head exited with status {head.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(1)
    raise RuntimeError(f"the head's dashboard did not open port {port} within {timeout_s:.0f} s")


def test_smoke_job_submitted_to_a_local_head_succeeds(local_head, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient

    dashboard_address, _ = local_head
    runtime_env = yaml.safe_load((REPOSITORY / "jobs" / "runtime_env.yaml").read_text())
    runtime_env.pop("pip")  # the test machine already has every dependency; no registry at run time
    runtime_env["working_dir"] = str(REPOSITORY)
    client = JobSubmissionClient(dashboard_address)
    storage = tmp_path / "runs"
    entrypoint = (
        f"{sys.executable} jobs/train.py --config jobs/configs/smoke.yaml --set run.storage_path={storage} "
        "--set train.steps=8 --set mixture.num_rounds=2 --set train.eval_every_n_steps=4"
    )
    deadline = time.monotonic() + HANG_GUARD_S
    while True:  # the head's job agent needs a few seconds after `ray start` returns
        try:
            job_id = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
            break
        except (RuntimeError, requests.exceptions.ConnectionError) as error:
            # not ready yet: no job agent, or the dashboard closing connections while its modules start
            ready_later = "No available agent" in str(error) or isinstance(error, requests.exceptions.ConnectionError)
            if not ready_later or time.monotonic() > deadline:
                raise
            time.sleep(2)
    status = client.get_job_status(job_id)
    while status not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED) and time.monotonic() < deadline:
        time.sleep(2)
        status = client.get_job_status(job_id)
    logs = client.get_job_logs(job_id)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    summary = json.loads((storage / "smoke" / "summary.json").read_text())
    assert summary["steps"] == 8 and len(summary["per_skill_val_loss"]) == 3
    assert len((storage / "smoke" / "mixture.jsonl").read_text().splitlines()) == 2
    assert "round 2/2" in logs
