"""The driver's console: our progress lines and results, Ray's own lines only from WARNING up.

Role in the flow: cli (`--verbose`) -> **console** -> launch (`connect_ray`, the TorchTrainer's run config)
and the Tune phases (their run configs and fits). By default Ray's INFO lines (the driver's `ray` logger,
every worker and actor of the job, Ray Train's controller and workers) stay in Ray's log files
(/tmp/ray/session_latest/logs), and Ray Tune prints no experiment table, trial status or TensorBoard hint
(our progress lines and one-line summaries stand for them); `--verbose`, or the variable
`SKILLIT_RAY_VERBOSE=1` (which reaches a submitted job too), shows them. Imports nothing heavy, so the
command line stays quick.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

VERBOSE_VARIABLE = "SKILLIT_RAY_VERBOSE"
"""Set to 1 (`skillit-ray ... --verbose` does) to show Ray's and the libraries' INFO lines on the console."""
NEW_OUTPUT_VARIABLE = "RAY_AIR_NEW_OUTPUT"
"""Ray Tune's choice of output engine: 0 the legacy one (silent at verbose=0), 1 (default) the newer one."""
RAY_TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"
"""Ray 2.60's logger of the notice "Token authentication is enabled for this Ray cluster" at every local
start, a WARNING about the secure default; the quiet console drops that notice (not the warning that
authentication is disabled)."""


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
        logging.getLogger(RAY_TOKEN_NOTICE_LOGGER).addFilter(_drop_token_auth_notice)


def _drop_token_auth_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Token authentication is enabled")


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


def keep_our_root_handler() -> None:
    """After `ray.init` on the driver: Ray's LoggingConfig adds its handler to the root logger beside ours
    (`configure_console`'s), which printed every line of ours from WARNING up twice, once with Ray's prefix
    and context; the root logger keeps ours (Ray's `ray` logger keeps Ray's handler)."""
    root, ray_handlers = logging.getLogger(), logging.getLogger("ray").handlers
    if any(handler not in ray_handlers for handler in root.handlers):
        for handler in [handler for handler in root.handlers if handler in ray_handlers]:
            root.removeHandler(handler)


@contextlib.contextmanager
def no_progress_bars() -> Iterator[None]:
    """Around transformers' `save_pretrained` unless verbose: its "Writing model shards" tqdm bar, drawn in a
    Ray Train worker, reached the driver's console as lines of its own."""
    from transformers.utils import logging as transformers_logging

    if is_verbose() or not transformers_logging.is_progress_bar_enabled():
        yield
        return
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.enable_progress_bar()


def tune_run_options() -> dict[str, Any]:
    """`tune.RunConfig` arguments: no trial status tables (verbose=0) unless verbose."""
    return {} if is_verbose() else {"verbose": 0}


@contextlib.contextmanager
def quiet_tune_output() -> Iterator[None]:
    """Around `Tuner.fit()`: unless verbose, Tune's legacy output engine (`RAY_AIR_NEW_OUTPUT=0`), silent at
    verbose=0. Ray 2.60's default engine prints its experiment table, the results path and a TensorBoard
    hint into /tmp/ray at every fit even at verbose=0 (`ray/tune/experimental/output.py`)."""
    if is_verbose() or NEW_OUTPUT_VARIABLE in os.environ:  # the user's own choice stands
        yield
        return
    os.environ[NEW_OUTPUT_VARIABLE] = "0"
    try:
        yield
    finally:
        os.environ.pop(NEW_OUTPUT_VARIABLE, None)
