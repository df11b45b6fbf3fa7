"""graph -> search -> train, each stage feeding the next.

Role in the flow: **pipeline** = `skillit-ray pipeline`: the graph learned (`graph_runs.py`) goes into
`mixture.graph_path`, the search (`search.py`) picks eta, rounds and window on it, and the best setting
trains (`train/launch.py`).
"""

from __future__ import annotations

import copy
from typing import Any

from skillit_ray.config.job import JobConfig
from skillit_ray.data.sources.registry import resolve_skills
from skillit_ray.train.launch import run_training
from skillit_ray.tune.graph_runs import learn_graph
from skillit_ray.tune.search import checked_candidates, tune_hyperparameters


def run_pipeline(config: JobConfig) -> dict[str, Any]:
    """graph -> tune -> train, each stage feeding the next (graph.json into mixture.graph_path)."""
    config.tune.validate_for_steps(config.train.steps)  # the search's own errors before the graph's runs
    checked_candidates(config, resolve_skills(config).train_skills)
    graph_result = learn_graph(config)
    tuned_input = copy.deepcopy(config)
    tuned_input.mixture.graph_path = graph_result["graph_json"]
    tuned_input.mixture.graph = []
    tuned_input.mixture.graph_preprocessing = "none"
    tune_result = tune_hyperparameters(tuned_input)
    summary = run_training(tune_result.pop("config"))
    return {"graph": graph_result, "tune": tune_result, "train": summary}
