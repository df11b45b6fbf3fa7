"""The driver's progress lines while a run trains: one per training record and one per finished round.

Role in the flow: metrics (rank 0 writes `progress.json` with its newest training record and
`mixture.jsonl`, `tracking.py`) -> **progress** -> the driver's console. A thread polls them through
storage (once a second on local disk, every ten seconds on object storage) and prints:

    [run] step 120/300 round 2/3 | 5,310 tok/s | loss 2.3141 | top skills a 0.41 b 0.30 c 0.12 | 1m02s, ETA 1m40s
    [run] round 2/3 step 200/300 weights [0.41 0.30 0.29] mean val loss 2.2114

a training line for every new training record (every `train.log_every_n_steps`) and at least every
`PROGRESS_EVERY_S`; a round line for every finished round. The ETA (`estimate_remaining_s`) is the
remaining steps at the measured step time plus the remaining evaluations at the time the evaluations
seen so far took. The thread also calls `every_10_s` (the run's lease).
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np

from skillit_ray.config.job import JobConfig
from skillit_ray.data.storage import RunStorage
from skillit_ray.train.evaluation import evaluation_steps
from skillit_ray.train.metrics import MIXTURE_FILE, read_jsonl
from skillit_ray.train.tracking import PROGRESS_FILE

MAX_PRINTED_WEIGHTS = 12
"""Up to this many skills the progress line lists every weight; above, their range (mixture.jsonl has all)."""
PROGRESS_EVERY_S = 30.0
"""A training line at least this often, even while no new training record arrives (a long evaluation)."""
NUM_TOP_SKILLS = 3
"""Skills named on the training line: the current mixture's heaviest."""


class ProgressPrinter(threading.Thread):
    """Driver thread: a training line per training record (at least every 30 s), a line per finished round.

    `skills` names the training skills; `current_mixture()` returns the newest round's
    {"round", "weights"} (the sampler's, None before the first round); without it the line shows the
    last finished round's weights."""

    def __init__(self, storage: RunStorage, config: JobConfig, every_10_s=None, skills=None, current_mixture=None):
        super().__init__(daemon=True)
        self.storage, self.config, self.every_10_s = storage, config, every_10_s
        self.skills, self.current_mixture = skills, current_mixture
        self.poll_s = 1.0 if storage.is_local else 10.0
        self._stop_event = threading.Event()
        self._printed = 0
        self.clock = RunClock(config)
        self._last_record: dict | None = None
        self._last_printed_s = time.monotonic()
        self._last_weights: list[float] | None = None

    def run(self) -> None:
        ticks = 0
        while not self._stop_event.wait(1.0):
            ticks += 1
            if ticks % int(self.poll_s) == 0:
                self.flush()
            if self.every_10_s is not None and ticks % 10 == 0:
                self.every_10_s()

    def flush(self) -> None:
        self._print_training_line()
        try:
            rounds = read_jsonl(self.storage, MIXTURE_FILE)
        except (OSError, ValueError):  # being rewritten, or storage unreachable for a moment
            return
        self._printed = min(self._printed, len(rounds))  # a resume rewrote the file from its checkpoint
        for record in rounds[self._printed :]:
            print(progress_line(self.config, record), flush=True)
        if rounds:
            self._last_weights = rounds[-1]["weights"]
        self._printed = len(rounds)

    def _print_training_line(self) -> None:
        try:
            record = json.loads(self.storage.read_text(PROGRESS_FILE)) if self.storage.exists(PROGRESS_FILE) else None
        except (OSError, ValueError):
            record = None
        now = time.monotonic()
        is_new = record is not None and record != self._last_record
        if record is None or not (is_new or now - self._last_printed_s >= PROGRESS_EVERY_S):
            return
        if is_new:
            self.clock.observe(record["step"], now)
        self._last_record, self._last_printed_s = record, now
        print(training_line(self.config, record, self._top_skills(), self.clock, now), flush=True)

    def _top_skills(self) -> str:
        weights = self._last_weights
        if self.current_mixture is not None:
            try:
                mixture = self.current_mixture()
            except Exception:  # the sampler is busy or restarting: show the last finished round's
                mixture = None
            weights = mixture["weights"] if mixture else weights
        return describe_top_skills(weights, self.skills) if weights else ""

    def stop(self) -> None:
        self._stop_event.set()
        self.flush()


class RunClock:
    """Elapsed time since the run started on the driver, and the ETA from what the steps took since the
    first training record this driver saw (a resume starts over)."""

    def __init__(self, config: JobConfig) -> None:
        self.config, self.started_s = config, time.monotonic()
        self.evaluations = sorted(evaluation_steps(config))
        self.first: tuple[int, float] | None = None  # (step, driver time) of the first record seen

    def observe(self, step: int, now_s: float) -> None:
        if self.first is None or step < self.first[0]:  # first record, or a retry went back
            self.first = (step, now_s)

    def eta(self, step: int, tokens_per_s: float, now_s: float) -> str:
        """The time until the last step ("2m00s"); the steps' time alone as a lower bound (">40s") until an
        evaluation was timed; "?" before a step time is measured."""
        if self.first is None or tokens_per_s <= 0:
            return "?"
        tokens_per_step = self.config.train.batch_size * self.config.data.sequence_length
        first_step, first_s = self.first
        # the evaluation at step s runs after the training record of step s
        remaining_evaluations = sum(1 for at in self.evaluations if at >= step)
        observed_evaluations = sum(1 for at in self.evaluations if first_step <= at < step)
        seconds = estimate_remaining_s(
            step_s=tokens_per_step / tokens_per_s,
            remaining_steps=self.config.train.steps - step,
            remaining_evaluations=remaining_evaluations,
            observed_s=now_s - first_s,
            observed_steps=step - first_step,
            observed_evaluations=observed_evaluations,
        )
        lower_bound = remaining_evaluations > 0 and observed_evaluations == 0
        return (">" if lower_bound else "") + format_duration(seconds)


def estimate_remaining_s(
    step_s: float,
    remaining_steps: int,
    remaining_evaluations: int,
    observed_s: float,
    observed_steps: int,
    observed_evaluations: int,
) -> float:
    """ETA in seconds: the remaining steps at `step_s` (the measured training time of one step), plus the
    remaining evaluations at the time one took so far: what the observed wall time `observed_s` (over
    `observed_steps` steps and `observed_evaluations` evaluations) holds beyond its steps' time."""
    evaluation_s = 0.0
    if observed_evaluations > 0:
        evaluation_s = max(0.0, observed_s - observed_steps * step_s) / observed_evaluations
    return remaining_steps * step_s + remaining_evaluations * evaluation_s


def training_line(config: JobConfig, record: dict, top_skills: str, clock: RunClock, now_s: float) -> str:
    """`[run] step s/S round r/R | tok/s | loss | top skills | elapsed, ETA` for one training record."""
    train, step = config.train, record["step"]
    round_index = train.round_of_step(max(step - 1, 0), config.mixture.num_rounds)
    parts = [
        f"[{config.run.name}] step {step}/{train.steps} round {round_index + 1}/{config.mixture.num_rounds}",
        f"{record['tokens_per_s']:,.0f} tok/s",
        f"loss {record['train_loss']:.4f}",
        *([f"top skills {top_skills}"] if top_skills else []),
        f"{format_duration(now_s - clock.started_s)}, ETA {clock.eta(step, record['tokens_per_s'], now_s)}",
    ]
    return " | ".join(parts)


def describe_top_skills(weights: list[float], skills: list[str] | None) -> str:
    """The heaviest skills of a mixture with their weights: "b 0.50 a 0.30 c 0.20"."""
    names = skills if skills and len(skills) == len(weights) else [f"skill_{index}" for index in range(len(weights))]
    order = np.argsort(-np.asarray(weights), kind="stable")[:NUM_TOP_SKILLS]
    return " ".join(f"{names[index]} {weights[index]:.2f}" for index in order)


def format_duration(seconds: float) -> str:
    """42s, 3m05s, 1h02m."""
    seconds = int(round(max(seconds, 0.0)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_line(config: JobConfig, record: dict) -> str:
    line = (
        f"[{config.run.name}] round {record['round'] + 1}/{config.mixture.num_rounds} "
        f"step {record['step']}/{config.train.steps} {describe_weights(record['weights'])}"
    )
    if record["val_loss"]:
        line += f" mean val loss {np.mean(record['val_loss']):.4f}"
    if record["accuracy"]:
        line += f" mean acc {100 * np.mean(record['accuracy']):.1f}%"
    return line


def describe_weights(weights: list[float]) -> str:
    if len(weights) <= MAX_PRINTED_WEIGHTS:
        return "weights [" + " ".join(f"{weight:.2f}" for weight in weights) + "]"
    return f"weights of {len(weights)} skills in [{min(weights):.3f}, {max(weights):.3f}]"
