"""`python -m skillit_ray.benchmarks chaos`: a failure drill on one long CPU run, against the same run uninterrupted.

Role in the flow: a benchmark beside the product (not a test): it drives `skillit-ray train` as real
driver processes against a real local Ray head, injects faults through `skillit_ray.faults`, and
prints what happened. Faults, `--faults-per-kind` of each, spread over the run (kinds in turn):

    worker     rank 0's training process SIGKILLed at an exact step (Ray Train retries the group)
    sampler    the sampler actor's process SIGKILLed after a report (the actor restarts, one retry)
    driver     the driver process SIGKILLed while its run waits at an exact step; the drill re-runs it
    corrupt    as driver, then the newest checkpoint's model.pt is truncated before the re-run
    disk_full  as driver, then the newest checkpoint is left as a full disk leaves it (a file cut
               short, the files after it and the manifest never written)

It prints (JSON) the faults injected and recovered per kind, the steps replayed (from each fault's
step back to the step the next start restored, read from the workers' own event log), the driver
launches, the wall time of both runs, and the rows of the uninterrupted run's mixture log that the
drill run lost or changed (every round's weights, counts, losses; must be 0). Everything is ended
by process id: the driver processes and the head's `ray start --block`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from skillit_ray.benchmarks.registry import Benchmark, add_overrides
from skillit_ray.config.job import load_config
from skillit_ray.data.storage import RunStorage
from skillit_ray.train import checkpoint, faults

FAULT_KINDS = ("worker", "sampler", "driver", "corrupt", "disk_full")
DRIVER_FAULTS = ("driver", "corrupt", "disk_full")
DRILL_SETTINGS = [
    "data.source=lego",
    "data.lego.num_variables=3",
    "data.num_val_per_skill=20",
    "model.size=tiny",
    "train.batch_size=8",
    "train.eval_every_n_steps=20",
    "train.checkpoint_every_n_steps=20",
    "train.log_every_n_steps=20",
    "mixture.strategy=skillit",
    "mixture.graph=[[1, 1, 1], [0, 1, 1], [0, 0, 1]]",
    "mixture.num_rounds=6",
    "scaling.num_workers=1",
    "scaling.cpus_per_worker=1",
    "run.num_checkpoints_to_keep=3",
]
"""One long smoke-sized run: checkpoints and evaluations every 20 steps, 6 Skill-it rounds."""
STEPS_PER_FAULT = 40
LIMIT_PER_FAULT_S = 300.0
"""The drill gives up after this long per fault (plus one): a Ray Train restart of the worker group
takes 20 s on an idle 2-core machine and up to 3 minutes on a loaded one."""


def fault_schedule(faults_per_kind: int, steps: int, checkpoint_every: int) -> list[tuple[str, int]]:
    """(kind, step) for every fault, kinds in turn, evenly spread, never on a checkpoint step."""
    kinds = [kind for _ in range(faults_per_kind) for kind in FAULT_KINDS]
    spacing = steps // (len(kinds) + 1)
    offset = max(1, checkpoint_every // 2) + 1
    return [(kind, (index + 1) * spacing + offset) for index, kind in enumerate(kinds)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_local_head(temp_dir: Path, num_cpus: int) -> tuple[subprocess.Popen, str, dict[str, str]]:
    """A Ray head in the foreground of `ray start --block` (its process id stops all of it), every port
    explicit, token authentication on. Returns (process, GCS address, environment for its clients)."""
    token_file = Path.home() / ".ray" / "auth_token"
    if not token_file.is_file():
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.write_text(secrets.token_hex(32))
    environment = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file)}
    # SIGTERM stops the head at once: by default `ray start --block` first drains the node for up to 30 s
    environment["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
    ports = [_free_port() for _ in range(6)]  # GCS, agent HTTP and gRPC, metrics, runtime env, dashboard
    ray_binary = str(Path(sys.executable).parent / "ray")
    head = subprocess.Popen(
        [ray_binary, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={ports[0]}",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={ports[5]}",  # Ray Train's state queries need it
         f"--num-cpus={num_cpus}", f"--dashboard-agent-listen-port={ports[1]}",
         f"--dashboard-agent-grpc-port={ports[2]}", f"--metrics-export-port={ports[3]}",
         f"--runtime-env-agent-port={ports[4]}", f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    address = f"127.0.0.1:{ports[0]}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start --head exited with status {head.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", ports[5])) == 0:  # the dashboard comes up last
                return head, address, {**environment, "RAY_ADDRESS": address}
        time.sleep(1)
    stop_process(head)
    raise RuntimeError(f"the local Ray head did not open port {ports[0]} within 120 s")


def stop_process(process: subprocess.Popen, signal_number: int = signal.SIGTERM, timeout_s: float = 60) -> None:
    """End one process we started, by its process id; SIGKILL if it does not exit in time."""
    if process.poll() is None:
        os.kill(process.pid, signal_number)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def damage_newest_checkpoint(storage: RunStorage, kind: str) -> str:
    """Truncate the newest whole checkpoint's model (`corrupt`), or leave it as a full disk mid-write
    does (`disk_full`: optimizer.pt cut short, the files written after it and the manifest absent)."""
    whole = [directory for directory in checkpoint.checkpoint_directories(storage)
             if checkpoint.verify_checkpoint(storage, directory) is None]  # fmt: skip
    steps = {directory: json.loads(storage.read_text(f"{directory}/{checkpoint.TRAIN_STATE_FILE}"))["step"]
             for directory in whole}  # fmt: skip
    newest = storage.local_path() / max(whole, key=steps.get)
    if kind == "corrupt":
        payload = (newest / "model.pt").read_bytes()
        (newest / "model.pt").write_bytes(payload[: len(payload) // 2])
    else:
        payload = (newest / "optimizer.pt").read_bytes()
        (newest / "optimizer.pt").write_bytes(payload[:100])
        for name in ("scheduler.pt", checkpoint.TRAIN_STATE_FILE, checkpoint.MANIFEST_FILE):
            (newest / name).unlink(missing_ok=True)
    return f"{newest.name} (step {steps[max(whole, key=steps.get)]})"


class Driver:
    """One `skillit-ray train` driver process of the drill, its output in a log file."""

    def __init__(self, overrides: list[str], environment: dict[str, str], log_path: Path) -> None:
        config_path = log_path.parent / "drill.yaml"  # the shared settings; each launch adds its --set values
        config_path.write_text(yaml.safe_dump(load_config(None, DRILL_SETTINGS).to_dict()))
        command = [sys.executable, "-m", "skillit_ray.cli", "train", "--config", str(config_path)]
        for override in overrides:
            command += ["--set", override]
        self.log = open(log_path, "a")
        self.process = subprocess.Popen(command, env=environment, stdout=self.log, stderr=subprocess.STDOUT)

    def close(self) -> int:
        stop_process(self.process, signal.SIGKILL)
        self.log.close()
        return self.process.returncode


def run_until_finished(overrides: list[str], environment: dict[str, str], out: Path, plan: dict[int, str]) -> dict:
    """Launch the driver; on each stop request kill it by process id, damage as the fault says, re-launch;
    until a driver exits. Returns launches, exit status and the damage done per fault."""
    handled: dict[int, str] = {}
    launches, started = 0, time.monotonic()
    limit_s = LIMIT_PER_FAULT_S * (len(plan) + 1)
    while time.monotonic() - started < limit_s:
        launches += 1
        driver = Driver(overrides, environment, out / "drivers.log")
        try:
            finished = _wait_for_exit_or_stop(driver, handled, plan, overrides, out)
        finally:
            status = driver.close()
        if finished:
            if status != 0:
                raise RuntimeError(f"a drill driver exited with status {status}; see {out / 'drivers.log'}")
            return {"launches": launches, "exit_status": status, "handled": handled}
    raise RuntimeError(f"the drill did not finish within {limit_s:.0f} s; see {out / 'drivers.log'}")


def _wait_for_exit_or_stop(driver: Driver, handled: dict, plan: dict, overrides: list[str], out: Path) -> bool:
    """True when the driver exits by itself; False after handling a stop request (driver killed, damage done)."""
    while driver.process.poll() is None:
        requests = [int(path.stem.split("-")[1]) for path in out.glob("stop-*.request")]
        pending = [step for step in requests if step not in handled]
        if pending:
            step = pending[0]
            driver.close()  # SIGKILL: the driver dies at the exact step its run waits at
            kind = plan[step]
            handled[step] = damage_newest_checkpoint(RunStorage.at(_run_path(overrides)), kind) if kind in (
                "corrupt", "disk_full") else "driver killed"  # fmt: skip
            return False
        time.sleep(0.5)
    return True


def _run_path(overrides: list[str]) -> str:
    values = dict(override.split("=", 1) for override in overrides)
    return f"{values['run.storage_path']}/{values['run.name']}"


def compare_mixture_logs(reference: Path, drill: Path) -> dict[str, int]:
    """Rows of the reference mixture.jsonl absent from, or different in, the drill's."""
    expected = [json.loads(line) for line in reference.read_text().splitlines() if line.strip()]
    got = {row["round"]: row for row in (json.loads(line) for line in drill.read_text().splitlines() if line.strip())}
    lost = sum(row["round"] not in got for row in expected)
    changed = sum(row["round"] in got and got[row["round"]] != row for row in expected)
    return {"reference_rows": len(expected), "rows_lost": lost, "rows_changed": changed}


def replayed_steps(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each fault in the workers' event log: its step and the step the next start restored."""
    replays = []
    for index, event in enumerate(events):
        if event["event"] == "start":
            continue
        restart = next((later for later in events[index + 1 :] if later["event"] == "start"), None)
        restored = restart["restored_step"] if restart else None
        replays.append({"kind": event["event"], "planned_step": event["planned_step"], "step": event["step"],
                        "restored_step": restored,
                        "replayed": None if restored is None else event["step"] - restored})  # fmt: skip
    return replays


def chaos(faults_per_kind: int = 2, overrides: list[str] | None = None, out: str | None = None) -> dict[str, Any]:
    """Run the reference and the drill on one local head; return the figures."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a terminated drill still stops what it started
    directory = Path(out or tempfile.mkdtemp(prefix="skillit-chaos-")).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    steps = STEPS_PER_FAULT * (faults_per_kind * len(FAULT_KINDS) + 1)
    base = [*DRILL_SETTINGS, f"train.steps={steps}", f"run.storage_path={directory / 'runs'}", *(overrides or [])]
    schedule = fault_schedule(faults_per_kind, steps, checkpoint_every=20)
    injected = ",".join(f"{'stop' if kind in DRIVER_FAULTS else kind}@{step}" for kind, step in schedule)
    temp_dir = Path("/tmp") / f"skillit-chaos-{secrets.token_hex(3)}"  # short: Unix socket paths are limited
    head, address, environment = start_local_head(temp_dir, num_cpus=max(2, os.cpu_count() or 1))
    try:
        started = time.monotonic()
        reference = run_until_finished([*base, "run.name=reference"], environment, directory, {})
        reference_s = time.monotonic() - started
        drill_environment = {**environment, faults.FAULT_PLAN_VARIABLE: injected,
                             faults.FAULT_DIRECTORY_VARIABLE: str(directory)}  # fmt: skip
        drill_overrides = [*base, "run.name=drill", f"run.max_failures={len(schedule)}"]
        started = time.monotonic()
        drill = run_until_finished(drill_overrides, drill_environment, directory, dict((s, k) for k, s in schedule))
        drill_s = time.monotonic() - started
    finally:
        stop_process(head)
        shutil.rmtree(temp_dir, ignore_errors=True)
    events = faults.read_events(directory)
    replays = replayed_steps(events)
    by_step = {step: kind for kind, step in schedule}
    for replay in replays:  # a stop is the driver-side fault planned at that step
        replay["kind"] = by_step[replay["planned_step"]]
    comparison = compare_mixture_logs(
        directory / "runs/reference/mixture.jsonl", directory / "runs/drill/mixture.jsonl"
    )
    return {
        "benchmark": "chaos",
        "steps": steps,
        "schedule": [f"{kind}@{step}" for kind, step in schedule],
        "faults_injected": {kind: sum(replay["kind"] == kind for replay in replays) for kind in FAULT_KINDS},
        "faults_recovered": {
            kind: sum(replay["kind"] == kind and replay["restored_step"] is not None for replay in replays)
            for kind in FAULT_KINDS
        },  # fmt: skip
        "steps_replayed": sum(replay["replayed"] or 0 for replay in replays),
        "replays": replays,
        "checkpoints_damaged": list(drill["handled"].values()),
        "driver_launches": drill["launches"],
        "drill_exit_status": drill["exit_status"],
        "reference_exit_status": reference["exit_status"],
        **comparison,
        "reference_wall_s": round(reference_s, 1),
        "drill_wall_s": round(drill_s, 1),
        "output": str(directory),
    }


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--faults-per-kind", type=int, default=2, help="faults of each of the 5 kinds")
    parser.add_argument("--out", default="", help="directory for its runs and logs (default: a temporary one)")
    add_overrides(parser)


BENCHMARKS = [
    Benchmark(
        "chaos",
        "failure drill (worker, sampler, driver, corrupt and cut-short checkpoints) vs the uninterrupted run",
        lambda arguments: chaos(arguments.faults_per_kind, arguments.overrides, arguments.out or None),
        _arguments,
    )
]
