"""The mixture-sampler Ray actor: one authority for the mixture of every round.

Role in the flow: mixture (a strategy) -> **sampler** -> train loop. A thin `@ray.remote(num_cpus=0)`
wrapper around a pure `MixtureStrategy`. Rank 0 reports each per-skill evaluation (already
all-reduced, so every rank holds the same numbers); every rank asks for the mixture once per round.
Calls are keyed by round and step, never by arrival order (Ray orders calls only per submitter), so
all ranks of a round receive the identical `(round, weights, seed)`: the weights of a round are
computed once, cached, and replayed on every later request, including after a resume. Its state goes
into every checkpoint (`sampler.json`). It carries no metrics: rank 0 writes those (`metrics.py`).
"""

from __future__ import annotations

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
        self.stopped: str | None = None

    def get_round(self, round_index: int, num_evaluations_expected: int) -> dict[str, Any]:
        """The round's mixture; computed on first request, identical for every later request."""
        if round_index not in self.round_weights:
            observed = len(self.strategy.loss_steps)
            if observed < num_evaluations_expected:
                raise RuntimeError(
                    f"round {round_index} asked for after {observed} evaluations, expected "
                    f"{num_evaluations_expected}: rank 0 must report before the round starts"
                )
            weights = self.strategy.weights_for_round(round_index)
            self.round_weights[round_index] = [float(value) for value in weights]
        return {"round": round_index, "weights": list(self.round_weights[round_index]), "seed": self.seed}

    def latest_round(self) -> dict[str, Any] | None:
        """The newest round's mixture asked for so far (the driver's progress line), None before the first."""
        if not self.round_weights:
            return None
        round_index = max(self.round_weights)
        return {"round": round_index, "weights": list(self.round_weights[round_index])}

    def report_evaluation(self, step: int, val_loss: list[float]) -> int:
        """Feed one evaluation to the strategy (idempotent per step, so a retried call does not double count)."""
        steps = self.strategy.loss_steps
        if not steps or step > steps[-1]:
            self.strategy.observe(step, val_loss)
        return len(self.strategy.loss_steps)

    def report_stop(self, message: str) -> None:
        """The run stopped early and must not be retried (e.g. a non-finite loss); the driver raises it."""
        self.stopped = message

    def stop_message(self) -> str | None:
        return self.stopped

    def state_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy.state_dict(),
            "seed": self.seed,
            "round_weights": {str(key): value for key, value in self.round_weights.items()},
            "stopped": self.stopped,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["seed"]) != self.seed:
            raise ValueError(f"checkpoint was written with train.seed={state['seed']}, this run has {self.seed}")
        self.strategy.load_state_dict(state["strategy"])
        self.round_weights = {int(key): list(value) for key, value in state["round_weights"].items()}
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

    def stop_message(self) -> str | None:
        return self.state.stop_message()

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
    def latest_round(self) -> dict[str, Any] | None:
        """The newest round's mixture asked for so far (the driver's progress line), None before the first."""
        if not self.round_weights:
            return None
        round_index = max(self.round_weights)
        return {"round": round_index, "weights": list(self.round_weights[round_index])}

    def report_evaluation(self, step: int, val_loss: list[float]) -> int: ...
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
