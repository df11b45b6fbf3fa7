"""The mixture-sampler Ray actor: one authority for the mixture of every round.

Role in the flow: data -> **sampler** -> train. A thin `@ray.remote(num_cpus=0)` wrapper around a
pure `mixture.MixtureStrategy`. Rank 0 reports each per-skill evaluation (already all-reduced, so
every rank holds the same numbers) and each finished round's achieved counts; every rank asks for
the mixture once per round. Calls are keyed by round and step, never by arrival order (Ray orders
calls only per submitter), so all ranks of a round receive the identical `(round, weights, seed)`:
the weights of a round are computed once, cached, and replayed on every later request, including
after a resume.

The actor also keeps the run's log (one record per round, one per evaluation), so that the whole
mixture trajectory lives in one place, goes into every checkpoint through `state_dict`, and the
driver can print a progress line per round while training runs.
"""

from __future__ import annotations

import copy
import os
import uuid
from typing import Any, Protocol

import ray

from skillit_ray.mixture.strategy import MixtureStrategy


class MixtureSamplerState:
    """Plain (Ray-free) state of the sampler; the actor below only forwards calls to it."""

    def __init__(self, strategy: MixtureStrategy, seed: int) -> None:
        self.strategy, self.seed = strategy, int(seed)
        self.round_weights: dict[int, list[float]] = {}
        self.round_records: list[dict[str, Any]] = []
        self.evaluations: list[dict[str, Any]] = []
        self.train_records: list[dict[str, Any]] = []
        self.stopped: str | None = None

    def get_round(self, round_index: int, num_evaluations_expected: int) -> dict[str, Any]:
        """The round's mixture; computed on first request, identical for every later request."""
        if round_index not in self.round_weights:
            if len(self.evaluations) < num_evaluations_expected:
                raise RuntimeError(
                    f"round {round_index} asked for after {len(self.evaluations)} evaluations, expected "
                    f"{num_evaluations_expected}: rank 0 must report before the round starts"
                )
            weights = self.strategy.weights_for_round(round_index)
            self.round_weights[round_index] = [float(value) for value in weights]
        return {"round": round_index, "weights": list(self.round_weights[round_index]), "seed": self.seed}

    def report_evaluation(self, step: int, val_loss: list[float], accuracy: list[float] | None) -> int:
        """Record one evaluation (idempotent per step, so a retried call does not double count)."""
        if self.evaluations and step <= self.evaluations[-1]["step"]:
            return len(self.evaluations)
        self.strategy.observe(step, val_loss)
        self.evaluations.append({"kind": "eval", "step": int(step), "val_loss": list(val_loss), "accuracy": accuracy})
        return len(self.evaluations)

    def report_round(self, round_index: int, step: int, achieved_counts: list[int], num_ranks_agreeing: int) -> None:
        """Record a finished round: target weights, achieved counts, the last evaluation."""
        if any(record["round"] == round_index for record in self.round_records):
            return
        last = self.evaluations[-1] if self.evaluations else {"val_loss": None, "accuracy": None}
        self.round_records.append(
            {
                "round": int(round_index),
                "step": int(step),
                "weights": list(self.round_weights[round_index]),
                "achieved_counts": [int(count) for count in achieved_counts],
                "val_loss": last["val_loss"],
                "accuracy": last["accuracy"],
                "num_ranks_agreeing": int(num_ranks_agreeing),
            }
        )

    def report_train(self, records: list[dict[str, Any]]) -> None:
        """Training-loss lines (batched by rank 0, sent once per evaluation)."""
        seen = {(record["kind"], record["step"]) for record in self.train_records}
        self.train_records.extend(record for record in records if (record["kind"], record["step"]) not in seen)

    def report_stop(self, message: str) -> None:
        """The run stopped early and must not be retried (e.g. a non-finite loss); the driver raises it."""
        self.stopped = message

    def records(self) -> dict[str, Any]:
        return {
            "rounds": copy.deepcopy(self.round_records),
            "evaluations": copy.deepcopy(self.evaluations),
            "train": copy.deepcopy(self.train_records),
            "stopped": self.stopped,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy.state_dict(),
            "seed": self.seed,
            "round_weights": {str(key): value for key, value in self.round_weights.items()},
            **self.records(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["seed"]) != self.seed:
            raise ValueError(f"checkpoint was written with train.seed={state['seed']}, this run has {self.seed}")
        self.strategy.load_state_dict(state["strategy"])
        self.round_weights = {int(key): list(value) for key, value in state["round_weights"].items()}
        self.round_records = list(state["rounds"])
        self.evaluations = list(state["evaluations"])
        self.train_records = list(state["train"])
        self.stopped = state.get("stopped")


SAMPLER_MAX_RESTARTS = 3
"""Times Ray restarts a dead sampler actor; each restart costs one Ray Train retry (see `ActorSamplerClient`)."""


@ray.remote(num_cpus=0, max_restarts=SAMPLER_MAX_RESTARTS)
class MixtureSampler:
    """Ray actor holding the `MixtureSamplerState` of one run (name: `sampler_actor_name(run)`).

    A restart (the process died) builds a fresh state with a new `incarnation`; workers notice the new
    incarnation on their next call and fail, so Ray Train restores them from the last checkpoint, and
    rank 0's restore loads the sampler's state from it: the trajectory stays identical.
    """

    def __init__(self, strategy: MixtureStrategy, seed: int) -> None:
        self.state = MixtureSamplerState(strategy, seed)
        self.incarnation = uuid.uuid4().hex

    def invoke(self, method: str, *arguments) -> tuple[str, Any]:
        """(this incarnation, the state's method called with the arguments)."""
        return self.incarnation, getattr(self.state, method)(*arguments)

    def records(self) -> dict[str, Any]:
        return self.state.records()

    def process_id(self) -> int:
        return os.getpid()


def sampler_actor_name(run_name: str) -> str:
    return f"skillit-sampler-{run_name}"


def create_sampler(run_name: str, strategy: MixtureStrategy, seed: int):
    """Start the run's named sampler actor, replacing a stale one left by an earlier driver."""
    name = sampler_actor_name(run_name)
    try:
        ray.kill(ray.get_actor(name))
    except ValueError:
        pass
    return MixtureSampler.options(name=name).remote(strategy, seed)


class SamplerClient(Protocol):
    """What the training loop calls: the in-process `MixtureSamplerState` or `ActorSamplerClient`."""

    def get_round(self, round_index: int, num_evaluations_expected: int) -> dict[str, Any]: ...
    def report_evaluation(self, step: int, val_loss: list[float], accuracy: list[float] | None) -> int: ...
    def report_round(
        self, round_index: int, step: int, achieved_counts: list[int], num_ranks_agreeing: int
    ) -> None: ...
    def report_train(self, records: list[dict[str, Any]]) -> None: ...
    def report_stop(self, message: str) -> None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class ActorSamplerClient:
    """Blocking calls to the sampler actor (one round trip per round or evaluation) that fail when the
    actor restarted since this worker's first call: its fresh state must be reloaded from a checkpoint
    (Ray Train's retry does that) before anyone uses it."""

    def __init__(self, actor) -> None:
        self.actor, self.incarnation = actor, None

    def __getattr__(self, name: str):
        def call(*arguments):
            incarnation, result = ray.get(self.actor.invoke.remote(name, *arguments))
            if self.incarnation is None:
                self.incarnation = incarnation
            elif incarnation != self.incarnation:
                raise RuntimeError("the sampler actor restarted: restoring the run from its last checkpoint")
            return result

        return call
