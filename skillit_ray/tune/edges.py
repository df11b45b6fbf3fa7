"""Following the objective past the edge of a search grid, and choosing among Skill-it and the baselines.

Role in the flow: search (`search.py`: every trial's objective) -> **edges** -> the next settings to try,
then the candidate that wins. Pure: no Ray, no torch; the search hands in what it measured.

When the best value of a searched dimension (eta, the number of rounds, the window) is the largest or the
smallest one tried, the objective may still be improving past it: `next_value` proposes the value one
`tune.edge_factor` further (x3 or /3 for eta; rounds and window are whole numbers, at least one more or
one fewer), until the objective turns (the new value is worse, so the best is no longer at the edge) or
a bound is reached (`tune.eta_bounds`, 1 round or window, the run's steps). `extend_search` repeats that
along every dimension through the best setting, up to `tune.max_edge_extensions` steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

DIMENSIONS = ("eta", "num_rounds", "window")


def best_setting(results: Sequence[dict[str, Any]], mode: str) -> dict[str, Any]:
    """The result with the best objective ("min" or "max"); ties go to the one tried first."""
    pick = min if mode == "min" else max
    return pick(results, key=lambda result: result["objective"])


def next_value(
    tried: dict[float, float], mode: str, factor: float, low: float, high: float, integer: bool = False
) -> float | None:
    """The value past the edge where the best of `tried` (value -> objective) sits, or None: the best is inside,
    only one value was tried, or the next would leave [low, high]."""
    if len(tried) < 2:
        return None
    values = sorted(tried)
    best = (min if mode == "min" else max)(values, key=lambda value: tried[value])
    if best == values[-1]:
        proposed = max(best + 1, round(best * factor)) if integer else best * factor
        return proposed if proposed <= high else None
    if best == values[0]:
        proposed = min(best - 1, round(best / factor)) if integer else best / factor
        return proposed if proposed >= low and proposed not in tried else None
    return None


def extend_search(
    results: list[dict[str, Any]],
    run_settings: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    mode: str,
    factor: float,
    bounds: dict[str, tuple[float, float]],
    max_extensions: int,
    dimensions: Sequence[str] = DIMENSIONS,
) -> list[dict[str, Any]]:
    """A line search along each dimension through the best setting, past the edges while the objective improves.

    At each step, for each of `dimensions` (those searched on a grid: a sampled eta has no edge), the line is
    the results that share the best setting's other values. A tried value next to the best one that this
    line lacks is run first (the best moved to a line not measured there); a complete line whose best value
    is at its end gets the value past it (`next_value`). `run_settings(settings)` measures settings (dicts
    of the `DIMENSIONS`) and returns them with their "objective". Returns every result, the first included.
    """
    results = list(results)
    for _ in range(max_extensions):
        best = best_setting(results, mode)
        proposals: list[dict[str, Any]] = []
        for dimension in dimensions:
            others = [other for other in DIMENSIONS if other != dimension]
            line = {result[dimension]: result["objective"] for result in results
                    if all(result[other] == best[other] for other in others)}  # fmt: skip
            values = sorted({result[dimension] for result in results})
            position = values.index(best[dimension])
            neighbors = values[max(0, position - 1) : position] + values[position + 1 : position + 2]
            missing = [value for value in neighbors if value not in line]
            if not missing:
                low, high = bounds[dimension]
                value = next_value(line, mode, factor, low, high, integer=dimension != "eta")
                missing = [] if value is None or math.isnan(value) else [value]
            proposals += [{**{name: best[name] for name in DIMENSIONS}, dimension: value} for value in missing]
        if not proposals:
            break
        results.extend(run_settings(proposals))
    return results


def choice_margin(objectives: dict[str, float], winner: str, mode: str) -> dict[str, Any]:
    """How much the `winner` of `objectives` (candidate -> objective) beats the next best: the runner-up's name and
    the margin, positive in the better direction (lower loss or higher accuracy); no runner-up: None and 0."""
    others = {name: value for name, value in objectives.items() if name != winner}
    if not others:
        return {"runner_up": None, "margin": 0.0}
    runner_up = (min if mode == "min" else max)(others, key=others.get)
    difference = others[runner_up] - objectives[winner]
    return {"runner_up": runner_up, "margin": float(difference if mode == "min" else -difference)}
