"""The driver's console: our progress lines and results, Ray's own lines only from WARNING up.

Role in the flow: cli (`--verbose`) -> **console** -> launch (`connect_ray`, the TorchTrainer's run config).
By default Ray's INFO lines (the driver's `ray` logger, every worker and actor of the job, Ray Train's
controller and workers) stay in Ray's log files (/tmp/ray/session_latest/logs); `--verbose`, or the
variable `SKILLIT_RAY_VERBOSE=1` (which reaches a submitted job too), shows them. Imports nothing heavy,
so the command line stays quick.
"""

from __future__ import annotations

import logging
import os
from typing import Any

VERBOSE_VARIABLE = "SKILLIT_RAY_VERBOSE"
"""Set to 1 (`skillit-ray ... --verbose` does) to show Ray's and the libraries' INFO lines on the console."""


def is_verbose() -> bool:
    return os.environ.get(VERBOSE_VARIABLE, "") not in ("", "0")


def configure_console(verbose: bool) -> None:
    """Our own INFO lines on the console; Ray's and other libraries' from WARNING up unless `verbose`."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    logging.getLogger("skillit_ray").setLevel(logging.INFO)
    if verbose:
        os.environ[VERBOSE_VARIABLE] = "1"
    else:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # MLflow configures its own logger at import


def ray_log_level() -> str:
    """The level of Ray's own lines on the console: INFO when verbose, else WARNING."""
    return "INFO" if is_verbose() else "WARNING"


def ray_console_options() -> dict[str, Any]:
    """`ray.init` arguments: the driver's `ray` logger and every worker's and actor's of the job at
    `ray_log_level()` (Ray's log files keep everything)."""
    import ray

    if is_verbose():
        return {}
    return {"logging_level": logging.WARNING, "logging_config": ray.LoggingConfig(log_level="WARNING")}
