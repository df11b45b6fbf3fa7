"""Run identity: what a run directory belongs to, who is running it now, and whether it already finished.

Role in the flow: train (driver, before Ray starts) -> **run_identity** -> storage. A run directory
`<storage_path>/<run name>/` records in `run.json` the configuration fingerprint, seed, steps and
rounds of the run that made it, and whether it finished. `claim_run` refuses, before any work:

* a run of another configuration under the same name (`run.name` is the run's identity);
* a different `train.steps` or `mixture.num_rounds` (they move every round boundary and the
  learning-rate schedule, so "extending" would not continue the same run): use a new name;
* a second live run of the same name: `lease.json` names the host and process that holds the run and
  is refreshed every `LEASE_REFRESH_S`; a lease older than `LEASE_EXPIRY_S`, or held by a process of
  this host that no longer exists, is stale and taken over.

A finished run asked to run again is a no-op: `claim_run` returns its summary and nothing is written.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from skillit_ray.data.storage import RunStorage

RUN_FILE, LEASE_FILE, SUMMARY_FILE = "run.json", "lease.json", "summary.json"
LEASE_REFRESH_S = 10.0
LEASE_EXPIRY_S = 60.0
"""A lease not refreshed for this long belongs to a driver that died."""


def _read_json(storage: RunStorage, name: str) -> dict[str, Any] | None:
    if not storage.exists(name):
        return None
    try:
        return json.loads(storage.read_text(name))
    except ValueError:
        return None


def _process_alive(process_id: int) -> bool:
    try:
        os.kill(process_id, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_run(storage: RunStorage, identity: dict[str, Any]) -> dict[str, Any] | None:
    """Check the run directory against this run and take its lease; returns the summary of an already
    finished run (then nothing else happens), else None. Raises ValueError naming the conflict."""
    recorded = _read_json(storage, RUN_FILE)
    if recorded is not None:
        if recorded.get("fingerprint") != identity["fingerprint"]:
            raise ValueError(
                f"{storage.uri('')} holds a run of a different configuration (skills, model, mixture, seed or batch "
                "size differ); use another run.name (nothing is overwritten)"
            )
        for key in ("steps", "num_rounds"):
            if recorded.get(key) != identity[key]:
                setting = "train.steps" if key == "steps" else "mixture.num_rounds"
                raise ValueError(
                    f"run {storage.name} was started with {setting}={recorded.get(key)}; {setting}={identity[key]} "
                    "would move its round boundaries and learning-rate schedule, so it would not continue the same "
                    "run: choose a new run.name (start it from this run's model with model.pretrained_path)"
                )
        if recorded.get("finished") and storage.exists(SUMMARY_FILE):
            return json.loads(storage.read_text(SUMMARY_FILE))
    _take_lease(storage)
    storage.write_text(RUN_FILE, json.dumps({**identity, "finished": False}, indent=2) + "\n")
    return None


def _take_lease(storage: RunStorage) -> None:
    lease = _read_json(storage, LEASE_FILE)
    if lease is not None and time.time() - lease.get("refreshed", 0) < LEASE_EXPIRY_S:
        same_host = lease.get("host") == socket.gethostname()
        if not same_host or _process_alive(int(lease.get("process_id", -1))):
            raise ValueError(
                f"run {storage.name} is running (host {lease.get('host')}, process {lease.get('process_id')}, "
                f"lease refreshed {time.time() - lease['refreshed']:.0f} s ago): wait for it, or use another run.name"
            )
    refresh_lease(storage)


def refresh_lease(storage: RunStorage) -> None:
    lease = {"host": socket.gethostname(), "process_id": os.getpid(), "refreshed": time.time()}
    storage.write_text(LEASE_FILE, json.dumps(lease) + "\n")


def release_run(storage: RunStorage, identity: dict[str, Any], finished: bool) -> None:
    """Record whether the run finished and give the lease back."""
    if finished:
        storage.write_text(RUN_FILE, json.dumps({**identity, "finished": True}, indent=2) + "\n")
    storage.delete(LEASE_FILE)
