"""Fault injection for tests and failure drills: the one place where the system kills itself on purpose.

Role in the flow: a loop callback (`callbacks.py`), never imported by the loop: the worker entry points
(`launch.py`, `local.py`) add it when one of these environment variables is set (the driver forwards
them to the Ray Train workers); read by the chaos drill (`benchmarks/chaos.py`) and the recovery tests.

* one-shot, for tests, firing only in a run that did not start from a checkpoint:
  `SKILLIT_RAY_FAIL_AT_STEP=S` (every worker raises at step S) and
  `SKILLIT_RAY_KILL_SAMPLER_AT_STEP=S` (rank 0 SIGKILLs the sampler actor's process right after
  reporting step S);
* a drill plan, `SKILLIT_RAY_FAULT_PLAN="worker@37,sampler@80,stop@130"` with
  `SKILLIT_RAY_FAULT_DIRECTORY=DIR` (on storage every node sees): each fault fires once, whatever
  restarts happen in between (a marker file per fault, created exclusively). `worker@S`: rank 0
  SIGKILLs its own process at step S. `sampler@S`: rank 0 SIGKILLs the sampler actor at its first
  report at or after step S. `stop@S`: rank 0 writes `DIR/stop-S.request` at step S and waits there
  to be killed, so the drill can kill the driver, damage checkpoints and re-run at an exact step.
  Rank 0 appends every start (with the step it restored) and every fault to `DIR/events.jsonl`.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skillit_ray.train.callbacks import LoopCallback

FAIL_AT_STEP_VARIABLE = "SKILLIT_RAY_FAIL_AT_STEP"
KILL_SAMPLER_AT_STEP_VARIABLE = "SKILLIT_RAY_KILL_SAMPLER_AT_STEP"
FAULT_PLAN_VARIABLE = "SKILLIT_RAY_FAULT_PLAN"
FAULT_DIRECTORY_VARIABLE = "SKILLIT_RAY_FAULT_DIRECTORY"
ENVIRONMENT_VARIABLES = (
    FAIL_AT_STEP_VARIABLE,
    KILL_SAMPLER_AT_STEP_VARIABLE,
    FAULT_PLAN_VARIABLE,
    FAULT_DIRECTORY_VARIABLE,
)
"""Forwarded from the driver to every training worker."""

FAULT_KINDS = ("worker", "sampler", "stop")
STOP_WAIT_S = 600.0
"""A stopped worker gives up waiting for the drill to kill it after this long."""
EVENTS_FILE = "events.jsonl"


def parse_plan(plan: str) -> list[tuple[str, int]]:
    """`"worker@37,sampler@80"` -> [("worker", 37), ("sampler", 80)], with errors naming the bad entry."""
    faults = []
    for entry in filter(None, (part.strip() for part in plan.split(","))):
        kind, _, step = entry.partition("@")
        if kind not in FAULT_KINDS or not step.isdigit():
            raise ValueError(f"{FAULT_PLAN_VARIABLE} entry {entry!r} must be KIND@STEP with KIND one of {FAULT_KINDS}")
        faults.append((kind, int(step)))
    return faults


def from_environment(fresh_start: bool, rank: int, kill_sampler: Callable[[], None] | None = None) -> list:
    """The fault injector of this worker as a list of callbacks: empty unless a fault variable is set."""
    if not any(os.environ.get(name) for name in ENVIRONMENT_VARIABLES):
        return []
    return [FaultInjector(fresh_start, rank, kill_sampler)]


class FaultInjector(LoopCallback):
    """This worker's faults: the one-shot test variables and the drill plan, from the environment."""

    def __init__(self, fresh_start: bool, rank: int, kill_sampler: Callable[[], None] | None = None) -> None:
        environment = os.environ
        self.rank, self.kill_sampler = rank, kill_sampler
        self.fail_at_step = int(environment[FAIL_AT_STEP_VARIABLE]) if fresh_start and environment.get(
            FAIL_AT_STEP_VARIABLE) else None  # fmt: skip
        self.kill_sampler_at_step = int(environment[KILL_SAMPLER_AT_STEP_VARIABLE]) if fresh_start and environment.get(
            KILL_SAMPLER_AT_STEP_VARIABLE) else None  # fmt: skip
        self.plan = parse_plan(environment.get(FAULT_PLAN_VARIABLE, "")) if rank == 0 else []
        directory = environment.get(FAULT_DIRECTORY_VARIABLE, "")
        if self.plan and not directory:
            raise ValueError(f"{FAULT_PLAN_VARIABLE} needs {FAULT_DIRECTORY_VARIABLE} (where faults are recorded)")
        self.directory = Path(directory) if directory else None

    def started(self, restored_step: int) -> None:
        """Record a (re)start of the worker group and the step it restored."""
        if self.plan:
            self._record({"event": "start", "restored_step": restored_step})

    def before_step(self, step: int) -> None:
        """At the start of `step`: raise, kill this process, or stop and wait, when a fault is due."""
        if step == self.fail_at_step:
            raise RuntimeError(f"injected failure at step {step} ({FAIL_AT_STEP_VARIABLE} is set)")
        if self._due("worker", step, exact=True):
            os.kill(os.getpid(), signal.SIGKILL)  # a real process death, as an OOM kill or a lost node
        if self._due("stop", step, exact=True):
            request = self.directory / f"stop-{step}.request"
            request.write_text(str(os.getpid()))
            deadline = time.monotonic() + STOP_WAIT_S
            while time.monotonic() < deadline:
                time.sleep(0.5)
            raise RuntimeError(f"stopped at step {step} for the drill, and nothing killed this run ({request})")

    def on_start(self, restored_step: int) -> None:
        self.started(restored_step)

    def on_report(self, step: int, metrics: dict[str, Any], checkpoint_directory: str | None) -> None:
        if self.kill_sampler is not None:
            self.after_report(step, self.kill_sampler)

    def after_report(self, step: int, kill_sampler: Callable[[], None]) -> None:
        """After rank 0 reported `step`: kill the sampler actor's process when that fault is due."""
        if self.rank == 0 and (step == self.kill_sampler_at_step or self._due("sampler", step, exact=False)):
            kill_sampler()

    def _due(self, kind: str, step: int, exact: bool) -> bool:
        for planned_kind, planned_step in self.plan:
            if planned_kind != kind or not (step == planned_step if exact else step >= planned_step):
                continue
            try:  # exclusive creation: a fault fires once across every restart and re-run
                (self.directory / f"fired-{kind}-{planned_step}").open("x").close()
            except FileExistsError:
                continue
            self._record({"event": kind, "planned_step": planned_step, "step": step})
            return True
        return False

    def _record(self, event: dict) -> None:
        with open(self.directory / EVENTS_FILE, "a") as events:
            events.write(json.dumps({**event, "time": time.time()}) + "\n")


def read_events(directory: str | Path) -> list[dict]:
    """The drill's event log (starts and faults, in order)."""
    path = Path(directory) / EVENTS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
