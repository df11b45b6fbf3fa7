"""The driver's view of a Tune fit: a progress line per finished trial (and at least every 30 s), each trial
to the trackers.

Role in the flow: graph runs / search (`graph_runs.py`, `search.py`: each Tune fit gets a `TrialReporter`
among its callbacks) -> **progress** -> the console and `trial_tracking.py`. Ray Tune calls the reporter on
the driver when a trial reports, finishes or fails, and after every step of its loop:

    [graph] trials 2/4 done, 41s elapsed, ETA 41s | only_lego_2: mean val loss 3.2110 -> 2.8042 at step 200
    [tune search] trials 3/8 done, 1m02s elapsed, ETA 1m43s | skillit(eta=0.3, rounds=2, window=3): mean_val_loss 1.2345
    [tune search] trials 3/8 done, 1m32s elapsed, ETA 2m33s

(the last: no trial finished for `PROGRESS_EVERY_S`). The ETA (`trials_remaining_s`) schedules what is left
at the mean length of the finished trials: each running trial ends that long after it started, and the
trials not started yet follow on the slots as they free up, as many slots as trials were seen running at
once; "?" until a trial finished. The tune phase's fits (the search, each step past a grid's edge, the
baselines) each show their own trials.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from ray.tune import Callback

from skillit_ray.train.progress import PROGRESS_EVERY_S, format_duration
from skillit_ray.tune.trial_tracking import PhaseTrackers, TrialRecord

Describe = Callable[[dict, list[dict], str], list[TrialRecord]]
"""(trial config, the trial's results in order, its error or "") -> its tracked records."""


def trials_remaining_s(trial_s: float, running_elapsed_s: list[float], num_pending: int, num_slots: int) -> float:
    """Seconds until the last trial is done when each takes `trial_s`: the running ones (`running_elapsed_s`,
    the time each has run) end at `trial_s`, and `num_pending` more start as the first of `num_slots` slots
    frees up."""
    slots = sorted(max(trial_s - elapsed_s, 0.0) for elapsed_s in running_elapsed_s)
    slots += [0.0] * max(num_slots - len(slots), 0 if slots else 1)
    for _ in range(num_pending):
        slots[0] += trial_s
        slots.sort()
    return max(slots)


def trials_line(
    label: str, counts: tuple[int, int, int], elapsed_s: float, remaining_s: float | None, last: str = ""
) -> str:
    """`[label] trials 3/5 done (1 failed), 41s elapsed, ETA 28s | last trial's result` for `counts` (done,
    total, failed)."""
    num_done, num_total, num_failed = counts
    failed = f" ({num_failed} failed)" if num_failed else ""
    eta = "?" if remaining_s is None else format_duration(remaining_s)
    line = f"[{label}] trials {num_done}/{num_total} done{failed}, {format_duration(elapsed_s)} elapsed, ETA {eta}"
    return f"{line} | {last}" if last else line


class TrialReporter(Callback):
    """A Tune callback on the driver: each finished or failed trial described (`describe`), logged to the
    phase's trackers and announced on a progress line; a line at least every `PROGRESS_EVERY_S` meanwhile."""

    def __init__(self, label: str, describe: Describe, trackers: PhaseTrackers | None = None) -> None:
        self.label, self.describe, self.trackers = label, describe, trackers
        self.num_total = self.num_failed = self.most_running = 0
        self.started_s = self.last_printed_s = time.monotonic()
        self.results: dict[str, list[dict[str, Any]]] = {}
        self.running: dict[str, float] = {}  # trial id -> when it started
        self.durations_s: list[float] = []

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info) -> None:
        self.num_total = int(total_num_samples or 0)
        self.started_s = self.last_printed_s = time.monotonic()

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.running[trial.trial_id] = time.monotonic()
        self.most_running = max(self.most_running, len(self.running))

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.results.setdefault(trial.trial_id, []).append(dict(result))

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        self.results.pop(trial.trial_id, None)  # retried: only the next attempt's results count
        self.running.pop(trial.trial_id, None)  # until it starts again

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._finished(trial, "")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        error = trial.get_error()
        self._finished(trial, str(error).strip().splitlines()[-1] if error else "failed")

    def on_step_end(self, iteration, trials, **info) -> None:
        if time.monotonic() - self.last_printed_s >= PROGRESS_EVERY_S:
            self._print("")

    def _finished(self, trial, error: str) -> None:
        records = self.describe(trial.config, self.results.pop(trial.trial_id, []), error)
        if self.trackers is not None:
            for record in records:
                self.trackers.log_trial(record)
        started_s = self.running.pop(trial.trial_id, None)
        self.durations_s.append(time.monotonic() - started_s if started_s is not None else 0.0)
        self.num_failed += bool(error)
        self._print("; ".join(record.headline for record in records if record.headline))

    def _print(self, last: str) -> None:
        self.last_printed_s = now = time.monotonic()
        num_done = len(self.durations_s)
        total = max(self.num_total, num_done + len(self.running))
        remaining_s = None
        if self.durations_s:
            running_s = [now - started_s for started_s in self.running.values()]
            pending = total - num_done - len(running_s)
            remaining_s = trials_remaining_s(statistics.fmean(self.durations_s), running_s, pending, self.most_running)
        line = trials_line(self.label, (num_done, total, self.num_failed), now - self.started_s, remaining_s, last)
        print(line, flush=True)
