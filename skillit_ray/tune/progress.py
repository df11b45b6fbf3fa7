"""The driver's view of a Tune fit: a progress line per finished trial (and at least every 30 s), each trial
to the trackers.

Role in the flow: graph runs / search (`graph_runs.py`, `search.py`: each Tune fit gets a `TrialReporter`
among its callbacks) -> **progress** -> the console and `trial_tracking.py`. Ray Tune calls the reporter on
the driver when a trial reports, finishes or fails, and after every step of its loop:

    [graph] trials 2/4 done, 41s elapsed, ETA 41s | only_lego_2: mean val loss 3.2110 -> 2.8042 at step 200
    [tune search] trials 3/8 done, 1m02s elapsed, ETA 1m43s | skillit(eta=0.3, rounds=2, window=3): mean_val_loss 1.2345
    [tune search] trials 3/8 done, 1m32s elapsed, ETA 2m33s

(the last: no trial finished for `PROGRESS_EVERY_S`). The ETA (`trials_remaining_s`) is the remaining
trials at the time a trial took so far, the wall time of the fit over the trials done: with trials
running side by side that is the fit's pace, not one trial's length. The phase's search of several fits
(the search, each step past a grid's edge, the baselines) shows each fit's trials.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ray.tune import Callback

from skillit_ray.train.progress import PROGRESS_EVERY_S, estimate_remaining_s, format_duration
from skillit_ray.tune.trial_tracking import PhaseTrackers, TrialRecord

Describe = Callable[[dict, list[dict], str], list[TrialRecord]]
"""(trial config, the trial's results in order, its error or "") -> its tracked records."""


def trials_remaining_s(elapsed_s: float, num_done: int, num_total: int) -> float | None:
    """Seconds until the last of `num_total` trials is done, at the pace so far (`num_done` in `elapsed_s`);
    None before a trial is done."""
    if num_done <= 0:
        return None
    return estimate_remaining_s(
        step_s=elapsed_s / num_done,
        remaining_steps=max(num_total - num_done, 0),
        remaining_evaluations=0,
        observed_s=elapsed_s,
        observed_steps=num_done,
        observed_evaluations=0,
    )


def trials_line(label: str, num_done: int, num_total: int, num_failed: int, elapsed_s: float, last: str = "") -> str:
    """`[label] trials 3/5 done (1 failed), 41s elapsed, ETA 28s | last trial's result`."""
    remaining_s = trials_remaining_s(elapsed_s, num_done, num_total)
    failed = f" ({num_failed} failed)" if num_failed else ""
    eta = "?" if remaining_s is None else format_duration(remaining_s)
    line = f"[{label}] trials {num_done}/{num_total} done{failed}, {format_duration(elapsed_s)} elapsed, ETA {eta}"
    return f"{line} | {last}" if last else line


class TrialReporter(Callback):
    """A Tune callback on the driver: each finished or failed trial described (`describe`), logged to the
    phase's trackers and announced on a progress line; a line at least every `PROGRESS_EVERY_S` meanwhile."""

    def __init__(self, label: str, describe: Describe, trackers: PhaseTrackers | None = None) -> None:
        self.label, self.describe, self.trackers = label, describe, trackers
        self.num_total = self.num_done = self.num_failed = 0
        self.started_s = self.last_printed_s = time.monotonic()
        self.results: dict[str, list[dict[str, Any]]] = {}

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info) -> None:
        self.num_total = int(total_num_samples or 0)
        self.started_s = self.last_printed_s = time.monotonic()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.results.setdefault(trial.trial_id, []).append(dict(result))

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        self.results.pop(trial.trial_id, None)  # retried: only the next attempt's results count

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
        self.num_done += 1
        self.num_failed += bool(error)
        self._print("; ".join(record.headline for record in records if record.headline))

    def _print(self, last: str) -> None:
        self.last_printed_s = now = time.monotonic()
        total = max(self.num_total, self.num_done)
        print(trials_line(self.label, self.num_done, total, self.num_failed, now - self.started_s, last), flush=True)
