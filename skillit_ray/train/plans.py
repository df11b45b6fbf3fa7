"""Round plans: what this rank trains on at each step, and the bookkeeping every plan shares.

Role in the flow: sampler (a round's weights) -> **plans** -> train step. A round plan turns a
round's published mixture into a schedule (the round's samples in training order) and gives this
rank its share of any step of it, from one interface:

    prepare(model, autocast_bf16)                  once, after restore (the curriculum scores its pool)
    schedule(round_index, weights, seed) -> array  the round's samples: skill indices or pool positions
    step_counts(schedule, step_in_round) -> counts this rank's per-skill counts of that step (no data read)
    batch(schedule, step_in_round, step) -> (token rows, per-skill counts) for this rank
    checkpoint_parts() -> (files, per-rank states) what a checkpoint must hold of the plan

`QuotaPlan` (every strategy with per-skill weights): exact integer quotas of the round, shuffled by
(seed, round), dealt to ranks per step, read from the per-skill streams. `curriculum.CurriculumPlan`
(sample-level curricula): paced positions of a pool scored by the initial model. `Rounds` does
what both share: fetch the round's mixture from the sampler once per round, check every rank holds
the same one, recount a round resumed in the middle, and close a round with the achieved counts
summed over ranks. A sample-level curriculum's pool is drawn in the proportions of round 0, which it
asks the sampler for like any round.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from skillit_ray.config.job import JobConfig
from skillit_ray.data.assembly import BatchAssembler
from skillit_ray.data.source import SkillSetup
from skillit_ray.mixture.quotas import round_quotas, round_skill_schedule, split_quotas_across_ranks
from skillit_ray.mixture.registry import strategy_class
from skillit_ray.train import distributed
from skillit_ray.train.curriculum import CurriculumPlan, build_curriculum_pool
from skillit_ray.train.sampler import SamplerClient


class RoundPlan(Protocol):
    def prepare(self, model: torch.nn.Module, autocast_bf16: bool) -> None: ...
    def schedule(self, round_index: int, weights: list[float], seed: int) -> np.ndarray: ...
    def step_counts(self, schedule: np.ndarray, step_in_round: int) -> np.ndarray: ...
    def batch(self, schedule: np.ndarray, step_in_round: int, step: int) -> tuple[np.ndarray, np.ndarray]: ...
    def checkpoint_parts(self) -> tuple[dict[str, Any], dict[str, Any]]: ...


class QuotaPlan:
    """Exact per-skill quotas of each round, shuffled and dealt to ranks per step, read from the streams."""

    def __init__(self, config: JobConfig, setup: SkillSetup, tokenizer, context: distributed.WorkerContext) -> None:
        self.config, self.context, self.num_skills = config, context, len(setup.train_skills)
        self.assembler = BatchAssembler(
            config, setup, tokenizer, context.rank, context.world_size, splits=context.dataset_splits
        )

    def prepare(self, model: torch.nn.Module, autocast_bf16: bool) -> None:
        pass  # streams open lazily at the first batch

    def schedule(self, round_index: int, weights: list[float], seed: int) -> np.ndarray:
        start, end = self.config.train.steps_in_round(round_index, self.config.mixture.num_rounds)
        quotas = round_quotas(weights, (end - start) * self.config.train.batch_size)
        return round_skill_schedule(quotas, seed, round_index)

    def _counts_by_rank(self, schedule: np.ndarray, step_in_round: int) -> np.ndarray:
        batch_size = self.config.train.batch_size
        step_entries = schedule[step_in_round * batch_size :][:batch_size]
        return split_quotas_across_ranks(step_entries, self.num_skills, self.context.world_size)

    def step_counts(self, schedule: np.ndarray, step_in_round: int) -> np.ndarray:
        return self._counts_by_rank(schedule, step_in_round)[self.context.rank]

    def batch(self, schedule: np.ndarray, step_in_round: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        # every rank needs every rank's counts: the streams' global positions advance by the whole step
        return self.assembler.next_batch(self._counts_by_rank(schedule, step_in_round), step)

    def checkpoint_parts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {}, {"data": self}

    def state_dict(self) -> dict[str, Any]:
        return self.assembler.state_dict()

    def load_rank_states(self, states_by_rank: list[dict[str, Any]], rank: int, world_size: int) -> None:
        """This rank's data positions; with another worker count, the global positions carry over and
        per-rank parquet streams restart their epoch under the new split."""
        if len(states_by_rank) == world_size:
            self.assembler.load_state_dict(states_by_rank[rank])
            return
        state = dict(states_by_rank[0])
        state["streams"] = {
            skill: {**stream_state, "world_size": len(states_by_rank)}
            for skill, stream_state in states_by_rank[0]["streams"].items()
        }
        self.assembler.load_state_dict(state)


def build_round_plan(
    config: JobConfig, setup: SkillSetup, tokenizer, context: distributed.WorkerContext, sampler: SamplerClient
) -> RoundPlan:
    """The curriculum plan for sample-level curricula (a strategy with a `sample_order`), else quotas."""
    if strategy_class(config.mixture.strategy).sample_order:
        proportions = sampler.get_round(0, 0)["weights"]  # the pool's composition: the fixed round-0 mixture
        return CurriculumPlan(config, build_curriculum_pool(config, setup, tokenizer, proportions), context)
    return QuotaPlan(config, setup, tokenizer, context)


class Rounds:
    """Round bookkeeping shared by every plan: the round's mixture once, this rank's batches, the round's record."""

    def __init__(
        self, config: JobConfig, plan: RoundPlan, sampler: SamplerClient, context: distributed.WorkerContext, eval_steps
    ) -> None:
        self.config, self.plan, self.sampler, self.context = config, plan, sampler, context
        self.eval_steps = sorted(eval_steps)
        self.round_index, self.round_start, self.round_end = -1, 0, 0
        self.schedule: np.ndarray | None = None
        self.num_ranks_agreeing = 0
        self.weights: list[float] = []
        self.achieved = np.zeros(0, dtype=np.int64)
        self.last_counts = np.zeros(0, dtype=np.int64)  # this rank's per-skill counts of the last batch

    def in_current_round(self, step: int) -> bool:
        return self.round_start <= step < self.round_end and self.round_index >= 0

    def batch(self, step: int) -> np.ndarray:
        """This rank's token rows of `step`, starting the step's round first when it is new."""
        round_index = self.config.train.round_of_step(step, self.config.mixture.num_rounds)
        if round_index != self.round_index:
            self._start_round(round_index, step)
        rows, self.last_counts = self.plan.batch(self.schedule, step - self.round_start, step)
        self.achieved += self.last_counts
        return rows

    def _start_round(self, round_index: int, step: int) -> None:
        train = self.config.train
        self.round_start, self.round_end = train.steps_in_round(round_index, self.config.mixture.num_rounds)
        expected = sum(1 for eval_step in self.eval_steps if eval_step <= self.round_start)
        published = self.sampler.get_round(round_index, expected)
        # the actor publishes once per round; check every rank really holds the same mixture
        weights_by_rank = distributed.all_gather_objects(published["weights"])
        if any(weights != weights_by_rank[0] for weights in weights_by_rank):
            raise RuntimeError(f"ranks received different mixtures for round {round_index}: {weights_by_rank}")
        self.round_index, self.num_ranks_agreeing = round_index, len(weights_by_rank)
        self.weights = [float(weight) for weight in published["weights"]]
        self.schedule = self.plan.schedule(round_index, published["weights"], published["seed"])
        self.achieved = np.zeros(len(published["weights"]), dtype=np.int64)
        for done in range(self.round_start, step):  # resumed mid-round: recount what the round's earlier steps took
            self.achieved += self.plan.step_counts(self.schedule, done - self.round_start)

    def close(self, completed: int) -> dict[str, Any] | None:
        """At a round's last step (every rank): the round's record, with the achieved counts summed over ranks."""
        if completed != self.round_end:
            return None
        totals = distributed.all_reduce_sum(torch.as_tensor(self.achieved, dtype=torch.int64)).tolist()
        return {
            "round": self.round_index,
            "step": completed,
            "weights": list(self.weights),
            "achieved_counts": [int(count) for count in totals],
            "num_ranks_agreeing": self.num_ranks_agreeing,
        }
