"""The efficiency benchmark's quick profile runs end to end, so the full benchmark cannot rot.

Not a measurement (the figures live in docs/RESULTS.md): it checks that the pipeline's graph and eta
tuning run, that every requested (strategy, seed) run lands in runs.jsonl, that the summary pairs
each strategy with stratified, and that the report and its plots are written.
Run: `.venv/bin/python -m pytest tests/test_efficiency.py`.
"""

from __future__ import annotations

import json

import torch

from skillit_ray.benchmarks.efficiency import efficiency


def test_quick_benchmark_learns_the_graph_tunes_eta_and_reports(tmp_path):
    threads = torch.get_num_threads()
    try:
        results = efficiency(str(tmp_path), ["staircase", "lego"], [0, 1], "quick", workers=0,
                             strategies=["skillit", "stratified", "random"])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    runs = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    reported = {(run["setting"], run["strategy"], run["seed"]) for run in runs if "/" not in run["setting"]}
    assert reported == {(setting, strategy, seed) for setting in ("staircase", "lego")
                        for strategy in ("skillit", "stratified", "random") for seed in (0, 1)}  # fmt: skip
    staircase = results["settings"]["staircase"]
    assert staircase["graph_json"].endswith("graph.json") and staircase["tuned_eta"] == 0.5
    lego = results["settings"]["lego"]  # the paper's graph; eta searched from the paper's 0.5 (quick: 0.5 alone)
    assert lego["graph_json"] == "" and lego["tuned_eta"] == 0.5 and lego["pipeline_choice"]["winner"]
    summary = staircase["summary"]
    assert summary["stratified"]["difference_to_stratified"] == [0.0, 0.0]
    assert len(summary["skillit"]["per_skill_mean"]) == 4 and summary["skillit"]["seeds"] == [0, 1]
    report = (tmp_path / "RESULTS.md").read_text()
    assert "## (3) Staircase chain" in report and "eta = 0.5" in report and "stratified" in report
    assert (tmp_path / "staircase.png").stat().st_size > 1000 and "![staircase](staircase.png)" in report
    # the pipeline's choice: Skill-it at its eta against stratified, on the tuning seed only
    choice = staircase["pipeline_choice"]
    assert set(choice["tuning_seed_finals"]) == {"skillit", "stratified"} and choice["seed"] not in (0, 1)
    assert choice["winner"] == max(choice["tuning_seed_finals"], key=choice["tuning_seed_finals"].get)  # accuracy
    assert f"The pipeline's choice on the same seed (skillit {choice['tuning_seed_finals']['skillit']:.3f}" in report
    assert "## The pipeline's choice against stratified" in report and f"| staircase | {choice['winner']} |" in report
    # resumable: a second call reuses every run
    again = efficiency(str(tmp_path), ["lego"], [0, 1], "quick", workers=0, strategies=["stratified"])
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == len(runs)
    assert again["settings"]["lego"]["summary"]["stratified"]["seeds"] == [0, 1]
