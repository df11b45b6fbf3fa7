"""The graph warning tells the truth: it simulates Skill-it's first rounds at the run's graph, eta,
window and measured loss scale, and names the eta that avoids collapse or a practically stratified
mixture. Run: `.venv/bin/python -m pytest tests/test_graph_warning.py`.
"""

from __future__ import annotations

import re

import numpy as np

from skillit_ray.mixture.first_rounds import mixture_warning, simulate_first_rounds

SKILLS = ["code", "docs", "headers", "licences", "python"]
# raw loss drops of ~3 on the diagonal and ~1 elsewhere, losses ~8 nats: the measured real-text case
RAW_GRAPH = np.full((5, 5), 1.0) + np.diag([2.5, 2.0, 3.0, 1.5, 2.8])
LOSSES = np.full(5, 8.0)


def suggested_eta(message: str) -> float:
    return float(re.search(r"mixture.eta to about ([0-9.e-]+)", message).group(1))


def test_a_raw_graph_at_the_paper_eta_collapses_and_the_suggested_eta_does_not():
    rounds = simulate_first_rounds(RAW_GRAPH, LOSSES, eta=0.5, window=3, reduce="sum")
    assert rounds[1].max() > 0.9  # nearly one-hot after one window, as measured on real text
    message = mixture_warning(RAW_GRAPH, LOSSES, 0.5, 3, "sum", SKILLS)
    assert message.startswith("Skill-it would collapse onto one skill") and "on headers" in message
    eta = suggested_eta(message)
    assert eta < 0.5 and mixture_warning(RAW_GRAPH, LOSSES, eta, 3, "sum", SKILLS) is None


def test_a_graph_with_equal_rows_is_practically_stratified():
    message = mixture_warning(np.ones((5, 5)), LOSSES, 0.5, 3, "sum", SKILLS)
    assert message.startswith("Skill-it would stay practically stratified") and "rows are all equal" in message
    small = np.diag([0.01, 0.02, 0.03, 0.04, 0.05]) + 0.5
    message = mixture_warning(small, LOSSES, 0.05, 3, "sum", SKILLS)
    assert "practically stratified" in message and suggested_eta(message) > 0.05


def test_an_intermediate_setting_gets_no_warning():
    graph = np.eye(5) + 0.5 * np.eye(5, k=1)  # a chain, the paper's 0.5 edges
    assert mixture_warning(graph, np.full(5, 0.7), 0.5, 3, "sum", SKILLS) is None


def test_row_min_removes_the_drop_a_short_run_gives_every_skill():
    from skillit_ray.graph.algorithms import normalize_graph

    structure = np.array([[1.9, 0.8, 0.2, 0.0], [0.0, 0.0, 0.01, 0.01], [0.0, 0.0, 0.0, 0.01], [0.0, 0.0, 0.0, 0.0]])
    raw = structure + 2.6  # every from-scratch short run first learns the answer format: all losses drop ~2.6
    names = ["s1", "s2", "s3", "s4"]
    kept = normalize_graph(raw, np.full(4, 3.0), "raw", None, "keep", train_skills=names, eval_skills=names)
    removed = normalize_graph(
        raw, np.full(4, 3.0), "raw", None, "keep", train_skills=names, eval_skills=names, common_drop="row_min"
    )
    np.testing.assert_allclose(removed, structure, atol=1e-12)
    assert (kept > 0).all()  # complete: every entry carries the shared drop
