"""The training loop's observer seam: hooks that see the loop's events, for everything that is not training.

Role in the flow: loop -> **callbacks** -> Ray Train's report (`launch.py`), Ray Tune's report
(`tune/`), the checkpoint keeper of skill discovery, fault injection for tests and drills
(`faults.py`). The loop calls every hook on every rank, in order; a callback that only rank 0 needs
checks `rank` itself. The loop never imports what observes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class LoopCallback:
    """A loop observer; every hook is a no-op unless overridden."""

    def on_start(self, restored_step: int) -> None:
        """The loop is ready to train from `restored_step` (0: a fresh start), after any restore."""

    def before_step(self, step: int) -> None:
        """Step `step` (0-based) is about to train."""

    def on_report(self, step: int, metrics: dict[str, Any], checkpoint_directory: str | None) -> None:
        """An evaluation or checkpoint point after `step` completed steps: the evaluation's metrics (or just
        the step), and the checkpoint's staging directory on the rank that wrote one (removed after return)."""


class LoopCallbacks(LoopCallback):
    """Several callbacks called in order, as one."""

    def __init__(self, callbacks: Sequence[LoopCallback] = ()) -> None:
        self.callbacks = list(callbacks)

    def on_start(self, restored_step: int) -> None:
        for callback in self.callbacks:
            callback.on_start(restored_step)

    def before_step(self, step: int) -> None:
        for callback in self.callbacks:
            callback.before_step(step)

    def on_report(self, step: int, metrics: dict[str, Any], checkpoint_directory: str | None) -> None:
        for callback in self.callbacks:
            callback.on_report(step, metrics, checkpoint_directory)
