"""Pure Skill-it math and every data-selection baseline, as plain numpy.

Role in the flow: the sampler actor (`sampler.py`) holds one `MixtureStrategy` from this module;
once per round it asks for the round's mixture weights, and after every per-skill evaluation it
feeds the validation losses back. Training workers turn the weights into exact integer quotas with
`round_quotas` and `split_quotas_across_ranks`. No Ray import: everything here is tested with toy
arrays.

Legend (paper symbols, used only here):
    k      number of training skills (rows of the skills graph A)
    m      number of evaluation skills (columns of A)
    A      skills graph, k x m; A[i, j] = how much training on skill i helps evaluation skill j
    eta    mirror-descent step size
    w      window: number of most recent evaluations aggregated per update
    L      per-evaluation-skill validation loss vector (length m)

The update follows the official code (`trainer/mw_trainer.py`), not the paper's box, where they
differ (reference section 1.4):
    p_{t+1} proportional to prior * exp(eta * A @ reduce(last w evaluations of L))
with reduce = sum for continual pre-training and out-of-domain, mean for fine-tuning. It is not
recursive in p, it does not threshold A, and with no evaluation yet it returns the initial mixture
prior * exp(eta * A @ 1_m). We compute it with log-sum-exp so large eta * A @ L cannot overflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# ----------------------------------------------------------------------------- validation helpers


def _as_graph(graph: Any, num_train_skills: int | None = None, num_eval_skills: int | None = None) -> np.ndarray:
    array = np.asarray(graph, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(
            f"skills graph must be a k x m matrix (rows = training skills, columns = evaluation skills), "
            f"got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(f"skills graph entry [{bad[0]}, {bad[1]}] is {array[tuple(bad)]}; every entry must be finite")
    if num_train_skills is not None and array.shape[0] != num_train_skills:
        raise ValueError(
            f"skills graph has {array.shape[0]} rows but there are {num_train_skills} training skills; "
            "give one row per training skill, in the same order"
        )
    if num_eval_skills is not None and array.shape[1] != num_eval_skills:
        raise ValueError(
            f"skills graph has {array.shape[1]} columns but there are {num_eval_skills} evaluation skills; "
            "give one column per evaluation skill, in the same order"
        )
    return array


def _as_weights(weights: Any, name: str, length: int | None = None, allow_zero: bool = True) -> np.ndarray:
    array = np.asarray(weights, dtype=np.float64)
    if array.ndim != 1 or array.size < 1:
        raise ValueError(f"{name} must be a non-empty 1-D list of weights, got shape {array.shape}")
    if length is not None and array.size != length:
        raise ValueError(f"{name} has {array.size} entries but there are {length} skills; give one per skill")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{name}={array.tolist()} must be finite and non-negative")
    if not allow_zero and np.any(array <= 0):
        raise ValueError(f"{name}={array.tolist()} must be strictly positive")
    if array.sum() <= 0:
        raise ValueError(f"{name}={array.tolist()} sums to 0; give at least one positive weight")
    return array


def normalize(weights: Any, name: str = "weights") -> np.ndarray:
    """Non-negative finite weights with a positive sum, scaled to sum to 1."""
    array = _as_weights(weights, name)
    return array / array.sum()


# ----------------------------------------------------------------------------- the Skill-it update


def paper_binary_graph(graph: Any) -> np.ndarray:
    """The official code's preprocessing of a binary synthetic graph: off-diagonal 1 -> 0.5.

    `mw_trainer.py` replaces every off-diagonal entry exactly equal to 1 by 0.5, so the LEGO graph
    has diagonal 1 and edges 0.5. Real-valued graphs (NI) pass through unchanged. We never apply this
    silently: configs ask for it with `mixture.graph_preprocessing: paper_binary`.
    """
    array = _as_graph(graph).copy()
    rows, columns = np.indices(array.shape)
    array[(rows != columns) & (array == 1.0)] = 0.5
    return array


def skillit_weights(
    graph: Any,
    loss_history: Sequence[Sequence[float]],
    eta: float,
    window: int,
    reduce: str = "sum",
    prior: Any = None,
) -> np.ndarray:
    """Skill-it mixture weights from the skills graph and the recent validation losses.

    Args:
        graph: k x m skills graph A (rows = training skills, columns = evaluation skills).
        loss_history: per-evaluation loss vectors, oldest first, each of length m.
        eta: step size, > 0.
        window: how many of the most recent evaluations enter the update, >= 1.
        reduce: "sum" (pre-training, out-of-domain) or "mean" (fine-tuning) over the window.
        prior: positive length-k prior (official `weights_init`); None means ones.

    Returns:
        Length-k weights summing to 1, proportional to prior * exp(eta * A @ aggregated_losses).
        With an empty history, aggregated_losses = ones(m): the initial mixture.
    """
    matrix = _as_graph(graph)
    num_train_skills, num_eval_skills = matrix.shape
    if not (np.isfinite(eta) and eta > 0):
        raise ValueError(f"eta={eta} must be a finite number > 0")
    if int(window) != window or window < 1:
        raise ValueError(f"window={window} must be an integer >= 1 (number of evaluations)")
    if reduce not in ("sum", "mean"):
        raise ValueError(f"reduce={reduce!r} must be 'sum' or 'mean'")
    prior_array = (
        np.ones(num_train_skills)
        if prior is None
        else _as_weights(prior, "prior", length=num_train_skills, allow_zero=False)
    )
    if len(loss_history) == 0:
        aggregated = np.ones(num_eval_skills)
    else:
        recent = np.asarray(list(loss_history)[-int(window) :], dtype=np.float64)
        if recent.ndim != 2 or recent.shape[1] != num_eval_skills:
            raise ValueError(
                f"each loss vector must have {num_eval_skills} entries (one per evaluation skill), "
                f"got shape {recent.shape}"
            )
        if not np.all(np.isfinite(recent)):
            raise ValueError(f"validation losses must be finite, got {recent.tolist()}; check the evaluation")
        aggregated = recent.sum(axis=0) if reduce == "sum" else recent.mean(axis=0)
    logits = np.log(prior_array) + eta * (matrix @ aggregated)
    logits -= logits.max()  # log-sum-exp shift: exp never overflows
    weights = np.exp(logits)
    return weights / weights.sum()


# ----------------------------------------------------------------------------- exact integer quotas


def round_quotas(weights: Any, num_samples: int) -> np.ndarray:
    """Integer per-skill sample counts that sum exactly to `num_samples` (largest remainder).

    Rule: every skill gets floor(p_i * n); the n - sum(floors) leftover samples go one each to the
    skills with the largest fractional parts, ties to the lower skill index; skills with weight 0
    never receive a leftover. The official code instead gives every leftover to the last skill
    (floor + last-absorbs), which biases the last skill by up to k - 1 samples per round and can
    give samples to a skill whose weight is 0. Ours is the closest integer vector in L1.
    """
    probabilities = normalize(weights)
    if int(num_samples) != num_samples or num_samples < 0:
        raise ValueError(f"num_samples={num_samples} must be a non-negative integer")
    num_samples = int(num_samples)
    exact = probabilities * num_samples
    quotas = np.floor(exact).astype(np.int64)
    leftover = num_samples - int(quotas.sum())
    if leftover > 0:
        remainders = exact - quotas
        remainders[probabilities == 0] = -1.0
        # stable sort on -remainder: ties keep index order
        order = np.argsort(-remainders, kind="stable")
        quotas[order[:leftover]] += 1
    assert quotas.sum() == num_samples
    return quotas


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(part) & 0xFFFFFFFF for part in key]))


def round_skill_schedule(quotas: Any, seed: int, round_index: int) -> np.ndarray:
    """The round's samples as a shuffled sequence of skill indices, deterministic in (seed, round).

    Step s of the round takes positions [s * batch, (s + 1) * batch) of this sequence, so every
    round trains on exactly its quotas, and each batch is a random draw from them (as the official
    code concatenates the round's per-skill samples, shuffles and iterates sequentially).
    """
    counts = np.asarray(quotas, dtype=np.int64)
    sequence = np.repeat(np.arange(counts.size), counts)
    _rng(seed, round_index, 0x5C4ED).shuffle(sequence)
    return sequence


def split_quotas_across_ranks(step_skill_indices: Any, num_skills: int, world_size: int) -> np.ndarray:
    """Per-rank, per-skill counts for one global step; rows = ranks, columns = skills.

    The step's (already shuffled) skill sequence is dealt contiguously: rank r takes positions
    [r * n // W, (r + 1) * n // W). Column sums equal the global per-skill counts exactly, rank
    shares differ by at most one sample, and the split is a pure function of its inputs, so every
    rank computes the same matrix without talking to the others.
    """
    indices = np.asarray(step_skill_indices, dtype=np.int64)
    if world_size < 1:
        raise ValueError(f"world_size={world_size} must be >= 1")
    if indices.size < world_size:
        raise ValueError(f"{indices.size} samples cannot be split over {world_size} ranks; raise the batch size")
    counts = np.zeros((world_size, num_skills), dtype=np.int64)
    for rank in range(world_size):
        start, end = rank_row_range(indices.size, world_size, rank)
        counts[rank] = np.bincount(indices[start:end], minlength=num_skills)
    return counts


def rank_row_range(num_rows: int, world_size: int, rank: int) -> tuple[int, int]:
    """[start, end) of the rows of a global step that rank `rank` trains on (contiguous, sizes differ by <= 1)."""
    return rank * num_rows // world_size, (rank + 1) * num_rows // world_size


def step_rank_quotas(
    weights: Any,
    samples_in_round: int,
    batch_size: int,
    step_in_round: int,
    world_size: int,
    seed: int,
    round_index: int,
) -> np.ndarray:
    """Per-rank per-skill counts for one step of a round (rows = ranks). Pure and deterministic."""
    quotas = round_quotas(weights, samples_in_round)
    sequence = round_skill_schedule(quotas, seed, round_index)
    step_indices = sequence[step_in_round * batch_size : (step_in_round + 1) * batch_size]
    return split_quotas_across_ranks(step_indices, len(quotas), world_size)


# ----------------------------------------------------------------------------- strategies


@dataclass
class MixtureStrategy:
    """Base of every data-selection strategy: mixture weights per round, fed by validation losses.

    Contract (the sampler actor relies on it):
      * `observe(step, losses)` is called after every evaluation with the per-evaluation-skill losses
        (length m), in step order; the first call is the evaluation before any training (step 0).
      * `weights_for_round(r)` is called once at the start of round r, after every evaluation of the
        previous rounds was observed, and returns length-k weights summing to 1.
      * `state_dict()` / `load_state_dict()` round-trip everything needed to continue identically.
    """

    num_train_skills: int
    loss_history: list[list[float]] = field(default_factory=list)
    loss_steps: list[int] = field(default_factory=list)

    name = "base"

    def observe(self, step: int, losses: Sequence[float]) -> None:
        """Record one evaluation (validation loss per evaluation skill)."""
        losses_array = np.asarray(losses, dtype=np.float64)
        if losses_array.ndim != 1 or not np.all(np.isfinite(losses_array)):
            raise ValueError(f"losses at step {step} must be a finite 1-D vector, got {losses}")
        if self.loss_steps and step < self.loss_steps[-1]:
            raise ValueError(f"evaluation at step {step} arrived after step {self.loss_steps[-1]}; report in order")
        self.loss_history.append(losses_array.tolist())
        self.loss_steps.append(int(step))

    def weights_for_round(self, round_index: int) -> np.ndarray:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "loss_history": [list(v) for v in self.loss_history],
            "loss_steps": list(self.loss_steps),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"checkpoint holds mixture strategy {state.get('name')!r}, this run uses {self.name!r}")
        self.loss_history = [list(v) for v in state["loss_history"]]
        self.loss_steps = list(state["loss_steps"])


@dataclass
class FixedMixture(MixtureStrategy):
    """The same weights every round: random (e.g. LEGO 1:1:1:3:5), stratified, target-only."""

    proportions: np.ndarray | None = None
    name = "fixed"

    def __post_init__(self) -> None:
        self.proportions = normalize(
            np.ones(self.num_train_skills) if self.proportions is None else self.proportions,
            "mixture.proportions",
        )
        if self.proportions.size != self.num_train_skills:
            raise ValueError(
                f"mixture.proportions has {self.proportions.size} entries for {self.num_train_skills} "
                "training skills; give one per training skill"
            )

    def weights_for_round(self, round_index: int) -> np.ndarray:
        return self.proportions.copy()


@dataclass
class SkillItMixture(MixtureStrategy):
    """Online Skill-it (and its ablations: static = one round, no_graph = identity graph)."""

    graph: np.ndarray | None = None
    eta: float = 0.5
    window: int = 3
    reduce: str = "sum"
    prior: np.ndarray | None = None
    online: bool = True
    name = "skillit"

    def __post_init__(self) -> None:
        self.graph = _as_graph(self.graph, num_train_skills=self.num_train_skills)
        # Checks eta, window, reduce and prior once, up front, with the empty history.
        skillit_weights(self.graph, [], self.eta, self.window, self.reduce, self.prior)

    def weights_for_round(self, round_index: int) -> np.ndarray:
        history = self.loss_history if (self.online and round_index > 0) else []
        return skillit_weights(self.graph, history, self.eta, self.window, self.reduce, self.prior)


@dataclass
class SkillCurriculumMixture(MixtureStrategy):
    """Skill-curriculum (easy -> hard) or skill-anticurriculum (hard -> easy), paper App. D.3.1.

    Skills are ranked by their loss at the first evaluation (before training). The rounds are split
    into k + 1 phases: phase p < k trains on the p-th ranked skill, mixing a fraction
    `mixing_fraction` of the earlier skills (uniformly); the last phase is skill-stratified over all.
    Requires continual pre-training (evaluation skills = training skills).
    """

    num_rounds: int = 6
    mixing_fraction: float = 0.4
    hardest_first: bool = False
    name = "skill_curriculum"

    def skill_order(self) -> np.ndarray:
        if not self.loss_history:
            raise ValueError("skill curriculum needs the evaluation before training (step 0) to rank skills")
        initial = np.asarray(self.loss_history[0])
        if initial.size != self.num_train_skills:
            raise ValueError("skill curriculum needs one evaluation loss per training skill (pre-training setting)")
        order = np.argsort(initial, kind="stable")
        return order[::-1].copy() if self.hardest_first else order

    def weights_for_round(self, round_index: int) -> np.ndarray:
        num_phases = self.num_train_skills + 1
        phase = min(round_index * num_phases // self.num_rounds, num_phases - 1)
        if phase == num_phases - 1:
            return np.full(self.num_train_skills, 1.0 / self.num_train_skills)
        order = self.skill_order()
        weights = np.zeros(self.num_train_skills)
        if phase == 0:
            weights[order[0]] = 1.0
        else:
            weights[order[phase]] = 1.0 - self.mixing_fraction
            weights[order[:phase]] = self.mixing_fraction / phase
        return weights / weights.sum()


# ----------------------------------------------------------------------------- sample-level curriculum


def curriculum_pool_skills(proportions: Any, pool_size: int, seed: int) -> np.ndarray:
    """Skill of each position of the curriculum's sample pool, in a seeded random order.

    The pool holds exactly `round_quotas(proportions, pool_size)` samples per skill (the official
    curriculum trainer scores "the same imbalanced pool as Random"); its order only matters for
    ties in the loss sort, and it is a pure function of (proportions, pool_size, seed).
    """
    if pool_size < 1:
        raise ValueError(f"the curriculum pool needs at least one sample (pool_size={pool_size})")
    sequence = np.repeat(np.arange(len(proportions)), round_quotas(proportions, pool_size))
    _rng(seed, 0xC0C0).shuffle(sequence)
    return sequence


def curriculum_round_indices(
    sample_losses: Any,
    num_rounds: int,
    samples_per_round: int,
    num_epochs: int,
    seed: int,
    anticurriculum: bool = False,
) -> list[np.ndarray]:
    """Sample-level (anti)curriculum: which pool samples each round trains on (reference section 2).

    The pool is sorted by the initial model's per-sample loss (easy -> hard, or reversed). Pacing
    g(r) = (r + 1) * n / M: round r draws `samples_per_round` samples without replacement from the
    first g(r) samples of the order (M = `num_epochs`, clipped to the pool), as
    `trainer/curriculum_trainer.py` does. Deterministic in seed.
    """
    losses = np.asarray(sample_losses, dtype=np.float64)
    if losses.ndim != 1 or losses.size == 0 or not np.all(np.isfinite(losses)):
        raise ValueError("sample_losses must be a non-empty finite 1-D array (one loss per pool sample)")
    if num_rounds < 1 or num_epochs < 1 or samples_per_round < 1:
        raise ValueError("num_rounds, num_epochs and samples_per_round must all be >= 1")
    order = np.argsort(losses, kind="stable")
    if anticurriculum:
        order = order[::-1].copy()
    pool_size = losses.size
    selections = []
    for round_index in range(num_rounds):
        available = min(pool_size, max(samples_per_round, (round_index + 1) * pool_size // num_epochs))
        prefix = order[:available]
        replace = samples_per_round > prefix.size
        chosen = _rng(seed, round_index, 0xC0).choice(prefix, size=samples_per_round, replace=replace)
        selections.append(np.asarray(chosen, dtype=np.int64))
    return selections


# ----------------------------------------------------------------------------- settings and factory


def resolve_eval_skills(
    setting: str, train_skills: list[str], eval_skills: list[str], target_skills: list[str]
) -> list[str]:
    """Evaluation skills (graph columns) for a setting.

    pretraining: the training skills. finetuning: the target skills (a subset of training skills).
    out_of_domain: the given evaluation skills, disjoint from the training skills.
    """
    if setting == "pretraining":
        if eval_skills and eval_skills != train_skills:
            raise ValueError(
                f"pretraining evaluates the training skills {train_skills}; data.eval_skills={eval_skills} "
                "differs: leave it empty or use mixture.setting=out_of_domain"
            )
        return list(train_skills)
    if setting == "finetuning":
        targets = target_skills or eval_skills
        unknown = [name for name in targets if name not in train_skills]
        if unknown:
            raise ValueError(
                f"fine-tuning target skill(s) {unknown} are not training skills {train_skills}; "
                "a target must be one of the training skills"
            )
        return list(targets)
    if setting == "out_of_domain":
        overlap = [name for name in eval_skills if name in train_skills]
        if overlap:
            raise ValueError(f"out_of_domain evaluation skills {overlap} are also training skills; keep them disjoint")
        return list(eval_skills)
    raise ValueError(f"setting={setting!r} must be pretraining, finetuning or out_of_domain")


def full_graph_columns(graph: np.ndarray, train_skills: list[str], target_skills: list[str]) -> np.ndarray:
    """Fine-tuning with a square k x k graph: keep only the target columns (official `graph[:, targets]`)."""
    indices = [train_skills.index(name) for name in target_skills]
    return np.asarray(graph)[:, indices]


def prerequisite_skills(graph: Any) -> np.ndarray:
    """Boolean mask of training skills with an edge into some evaluation skill (A_ij > 0 for some j)."""
    return np.any(_as_graph(graph) > 0, axis=1)


def stratified_proportions(setting: str, graph: Any | None, num_train_skills: int) -> np.ndarray:
    """Skill-stratified sampling: uniform over all skills (pre-training), else over prerequisites.

    In fine-tuning and out-of-domain the paper drops training skills with no edge into the
    evaluation skills and samples uniformly over the rest.
    """
    if setting == "pretraining" or graph is None:
        return np.full(num_train_skills, 1.0 / num_train_skills)
    mask = prerequisite_skills(graph)
    if not mask.any():
        raise ValueError("the skills graph has no positive entry; stratified sampling has no skill to sample")
    return mask / mask.sum()


def build_strategy(
    strategy: str,
    *,
    setting: str,
    num_train_skills: int,
    num_eval_skills: int,
    graph: np.ndarray | None,
    eta: float,
    window: int,
    loss_reduction: str,
    num_rounds: int,
    proportions: list[float],
    prior: list[float],
    mixing_fraction: float,
) -> MixtureStrategy:
    """Build a strategy from resolved config values (graph already k x m and preprocessed)."""
    if num_train_skills < 1:
        raise ValueError(f"there must be at least one training skill, got k={num_train_skills}")
    reduce = loss_reduction if loss_reduction != "auto" else ("mean" if setting == "finetuning" else "sum")
    prior_array = np.asarray(prior, dtype=np.float64) if prior else None
    if graph is None:
        if num_train_skills != num_eval_skills:
            raise ValueError(
                f"no skills graph given for {num_train_skills} training x {num_eval_skills} evaluation skills; "
                "the identity default needs a square setting: set mixture.graph or mixture.graph_path"
            )
        graph = np.eye(num_train_skills)
    graph = _as_graph(graph, num_train_skills, num_eval_skills)
    if strategy in ("skillit", "static", "no_graph"):
        return SkillItMixture(
            num_train_skills=num_train_skills,
            graph=np.eye(num_train_skills) if strategy == "no_graph" else graph,
            eta=eta,
            window=window,
            reduce=reduce,
            prior=prior_array,
            online=strategy != "static",
        )
    if strategy == "stratified":
        return FixedMixture(num_train_skills, proportions=stratified_proportions(setting, graph, num_train_skills))
    if strategy in ("random", "target_only", "curriculum", "anticurriculum"):
        # Sample-level curricula draw from the same (imbalanced) pool as random; their per-sample
        # ordering is applied by the data side via `curriculum_round_indices`.
        weights = proportions if proportions else np.ones(num_train_skills)
        return FixedMixture(num_train_skills, proportions=np.asarray(weights, dtype=np.float64))
    if strategy in ("skill_curriculum", "skill_anticurriculum"):
        if num_train_skills != num_eval_skills:
            raise ValueError(
                "skill (anti)curriculum ranks training skills by their own loss: use the pretraining setting"
            )
        return SkillCurriculumMixture(
            num_train_skills=num_train_skills,
            num_rounds=num_rounds,
            mixing_fraction=mixing_fraction,
            hardest_first=strategy == "skill_anticurriculum",
        )
    raise ValueError(f"unknown strategy {strategy!r}")
