"""Skills-graph learning (graph.py): hand-computed graphs from toy loss curves, normalization, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skillit_ray.graph import algorithms as graph_math
from skillit_ray.graph import diagnostics as graph_diagnostics
from skillit_ray.graph import files as graph_files

SKILLS = ["a", "b", "c"]
MEASURE_AT_STEP = 2
INITIAL_LOSSES = np.array([2.0, 3.0, 4.0])  # L_j(before) for evaluation skills a, b, c

# Validation-loss curves of each short run at steps 0, 1, 2 (columns: evaluation skills a, b, c).
# Step 0 equals INITIAL_LOSSES; the graph reads step MEASURE_AT_STEP.
LOSS_CURVES = {
    "only_a": [[2.0, 3.0, 4.0], [1.5, 2.8, 4.0], [1.0, 2.5, 4.0]],
    "only_b": [[2.0, 3.0, 4.0], [1.8, 2.0, 4.0], [1.5, 1.0, 4.0]],
    "only_c": [[2.0, 3.0, 4.0], [2.0, 3.0, 3.0], [2.0, 3.0, 2.0]],
    "pair_a__b": [[2.0, 3.0, 4.0], [1.0, 2.0, 4.0], [0.5, 1.5, 4.0]],
    "pair_a__c": [[2.0, 3.0, 4.0], [1.9, 3.0, 3.5], [1.75, 3.0, 3.0]],
    "pair_b__c": [[2.0, 3.0, 4.0], [2.0, 2.5, 2.0], [2.0, 2.0, 1.5]],
}


def losses_at_measure_step(run_ids: list[str], columns: list[int]) -> dict[str, np.ndarray]:
    return {run_id: np.array(LOSS_CURVES[run_id][MEASURE_AT_STEP])[columns] for run_id in run_ids}


def test_run_specs_singles_then_pairs():
    assert graph_math.linear_run_specs(["a", "b"]) == [
        {"run_id": "only_a", "proportions": [1.0, 0.0]},
        {"run_id": "only_b", "proportions": [0.0, 1.0]},
    ]
    specs = graph_math.brute_force_run_specs(SKILLS)
    assert [spec["run_id"] for spec in specs] == list(LOSS_CURVES)
    assert specs[4] == {"run_id": "pair_a__c", "proportions": [0.5, 0.0, 0.5]}
    with pytest.raises(ValueError, match="empty"):
        graph_math.linear_run_specs([])
    with pytest.raises(ValueError, match="repeats"):
        graph_math.brute_force_run_specs(["a", "a"])


def test_loss_drops_positive_when_loss_goes_down():
    drops = graph_math.loss_drops(np.array([2.0, 1.0]), {"run": np.array([1.5, 1.25])})
    np.testing.assert_array_equal(drops["run"], [0.5, -0.25])


def test_linear_graph_matches_hand_computation():
    runs = losses_at_measure_step(["only_a", "only_b", "only_c"], [0, 1, 2])
    graph = graph_math.linear_graph(SKILLS, SKILLS, INITIAL_LOSSES, runs)
    # Row i = L(before) - L(after only_i) = [2, 3, 4] - after:
    #   only_a: [2 - 1.0, 3 - 2.5, 4 - 4.0] = [1.0, 0.5, 0.0]
    #   only_b: [2 - 1.5, 3 - 1.0, 4 - 4.0] = [0.5, 2.0, 0.0]
    #   only_c: [2 - 2.0, 3 - 3.0, 4 - 2.0] = [0.0, 0.0, 2.0]
    expected = np.array([[1.0, 0.5, 0.0], [0.5, 2.0, 0.0], [0.0, 0.0, 2.0]])
    np.testing.assert_allclose(graph, expected)


def test_linear_graph_out_of_domain_is_k_by_m():
    # 3 training skills, 2 disjoint evaluation skills x and y.
    initial = np.array([5.0, 1.0])
    after = {"only_a": [4.0, 1.5], "only_b": [5.0, 0.5], "only_c": [3.0, 1.0]}
    graph = graph_math.linear_graph(SKILLS, ["x", "y"], initial, after)
    # [5 - 4, 1 - 1.5] = [1.0, -0.5]; [5 - 5, 1 - 0.5] = [0.0, 0.5]; [5 - 3, 1 - 1] = [2.0, 0.0]
    np.testing.assert_allclose(graph, [[1.0, -0.5], [0.0, 0.5], [2.0, 0.0]])
    assert graph.shape == (3, 2)


def test_linear_graph_names_missing_runs():
    with pytest.raises(ValueError, match="only_c"):
        graph_math.linear_graph(SKILLS, SKILLS, INITIAL_LOSSES, losses_at_measure_step(["only_a", "only_b"], [0, 1, 2]))


def test_brute_force_graph_matches_hand_computation():
    runs = losses_at_measure_step(list(LOSS_CURVES), [0, 1, 2])
    graph = graph_math.brute_force_graph(SKILLS, SKILLS, INITIAL_LOSSES, runs)
    # Loss drops (before [2, 3, 4] minus after):
    #   only_a [1.0, 0.5, 0.0], only_b [0.5, 2.0, 0.0], only_c [0.0, 0.0, 2.0]
    #   pair_a__b [1.5, 1.5, 0.0], pair_a__c [0.25, 0.0, 1.0], pair_b__c [0.0, 1.0, 2.5]
    # Diagonal A[j, j] = delta_j^j: a 1.0, b 2.0, c 2.0.
    # Off-diagonal A[i, j] = delta_j^{i,j} - delta_j^j:
    #   column a: b 1.5 - 1.0 = 0.5,   c 0.25 - 1.0 = -0.75
    #   column b: a 1.5 - 2.0 = -0.5,  c 1.0 - 2.0 = -1.0
    #   column c: a 1.0 - 2.0 = -1.0,  b 2.5 - 2.0 = 0.5
    expected = np.array([[1.0, -0.5, -1.0], [0.5, 2.0, 0.5], [-0.75, -1.0, 2.0]])
    np.testing.assert_allclose(graph, expected)


def test_brute_force_graph_fine_tuning_columns_follow_eval_order():
    # Evaluation skills c then a: columns 2 and 0 of every loss vector.
    runs = losses_at_measure_step(list(LOSS_CURVES), [2, 0])
    graph = graph_math.brute_force_graph(SKILLS, ["c", "a"], INITIAL_LOSSES[[2, 0]], runs)
    # Columns c and a of the full hand-computed graph above.
    np.testing.assert_allclose(graph, [[-1.0, 1.0], [0.5, 0.5], [2.0, -0.75]])


def test_brute_force_rejects_eval_skills_outside_training_skills():
    runs = losses_at_measure_step(list(LOSS_CURVES), [0, 1])
    with pytest.raises(ValueError, match=r"\['x'\]"):
        graph_math.brute_force_graph(SKILLS, ["a", "x"], np.array([2.0, 3.0]), runs)


def test_normalize_relative_threshold_diagonal_by_name():
    train, evaluation = ["a", "b", "c"], ["c", "a"]  # same-name positions: (a, col 1) and (c, col 0)
    raw = np.array([[2.0, 1.0], [0.5, -1.0], [4.0, 0.25]])
    initial = np.array([4.0, 2.0])
    # relative: column c / 4, column a / 2 -> [[0.5, 0.5], [0.125, -0.5], [1.0, 0.125]]
    relative = graph_math.normalize_graph(
        raw, initial, "relative", None, "keep", train_skills=train, eval_skills=evaluation
    )
    np.testing.assert_allclose(relative, [[0.5, 0.5], [0.125, -0.5], [1.0, 0.125]])
    # threshold 0.125: entries <= 0.125 become 0 -> [[0.5, 0.5], [0, 0], [1.0, 0]]
    thresholded = graph_math.normalize_graph(
        raw, initial, "relative", 0.125, "keep", train_skills=train, eval_skills=evaluation
    )
    np.testing.assert_allclose(thresholded, [[0.5, 0.5], [0.0, 0.0], [1.0, 0.0]])
    # diagonal by name, after the threshold; position (0, 0) is not a diagonal here
    one = graph_math.normalize_graph(raw, initial, "relative", 0.125, "one", train_skills=train, eval_skills=evaluation)
    np.testing.assert_allclose(one, [[0.5, 1.0], [0.0, 0.0], [1.0, 0.0]])
    zero = graph_math.normalize_graph(
        raw, initial, "relative", 0.125, "zero", train_skills=train, eval_skills=evaluation
    )
    np.testing.assert_allclose(zero, [[0.5, 0.0], [0.0, 0.0], [0.0, 0.0]])
    # raw keeps loss drops; out-of-domain names have no diagonal to change
    out_of_domain = graph_math.normalize_graph(
        raw, initial, "raw", None, "one", train_skills=train, eval_skills=["x", "y"]
    )
    np.testing.assert_allclose(out_of_domain, raw)
    with pytest.raises(ValueError, match="normalization"):
        graph_math.normalize_graph(raw, initial, "log", None, "keep", train_skills=train, eval_skills=evaluation)
    with pytest.raises(ValueError, match="diagonal"):
        graph_math.normalize_graph(raw, initial, "raw", None, "half", train_skills=train, eval_skills=evaluation)


def test_density_and_degenerate_warning():
    assert graph_diagnostics.graph_density(np.eye(4)) == 0.0
    assert "nearly empty" in graph_diagnostics.degenerate_graph_warning(np.eye(4))
    assert graph_diagnostics.graph_density(np.ones((4, 4))) == 1.0
    assert "nearly complete" in graph_diagnostics.degenerate_graph_warning(np.ones((4, 4)))
    half = np.eye(3) + np.triu(np.ones((3, 3)), 1)  # 3 of 6 off-diagonal entries positive
    assert graph_diagnostics.graph_density(half) == 0.5
    assert graph_diagnostics.degenerate_graph_warning(half) is None
    # by name: fine-tuning columns [c, a] exclude (a, col 1) and (c, col 0); 2 of the other 4 are positive
    fine_tuning = np.array([[0.0, 1.0], [1.0, 1.0], [1.0, -1.0]])
    assert graph_diagnostics.graph_density(fine_tuning, SKILLS, ["c", "a"]) == 0.5


def write_example(directory, **overrides):
    raw = np.array([[1.0, -0.5], [0.5, 2.0]])
    arguments = dict(
        train_skills=["a", "b"],
        eval_skills=["a", "b"],
        method="linear",
        steps=100,
        measure_at_step=50,
        initial_losses=np.array([2.0, 3.0]),
        raw_deltas={"only_a": np.array([1.0, -0.5]), "only_b": np.array([0.5, 2.0])},
        graph=np.maximum(raw, 0.0),
        raw_graph=raw,
        normalization="raw",
        threshold=0.0,
        diagonal="keep",
        extra={"seed": 7},
    )
    arguments.update(overrides)
    return graph_files.write_graph(directory, **arguments)


def test_write_and_load_round_trip(tmp_path):
    path = write_example(tmp_path / "graph")
    assert path == tmp_path / "graph" / "graph.json"
    document = json.loads(path.read_text())
    assert list(document) == [*graph_files.GRAPH_JSON_KEYS, "seed"]
    assert document["raw_deltas"] == {"only_a": [1.0, -0.5], "only_b": [0.5, 2.0]}
    assert document["raw_graph"] == [[1.0, -0.5], [0.5, 2.0]]
    assert document["density"] == 0.5 and document["warning"] is None
    expected = [[1.0, 0.0], [0.5, 2.0]]
    np.testing.assert_array_equal(graph_files.load_graph(str(path), ["a", "b"], ["a", "b"]), expected)
    np.testing.assert_array_equal(
        graph_files.load_graph(str(path.with_suffix(".npy")), ["a", "b"], ["a", "b"]), expected
    )
    assert not [name for name in (tmp_path / "graph").iterdir() if name.name.startswith(".")]  # no temporaries left


def test_load_graph_rejects_mismatches(tmp_path):
    path = write_example(tmp_path)
    with pytest.raises(ValueError, match=r"only in the file: \['b'\]; only in the run: \['z'\]") as error:
        graph_files.load_graph(str(path), ["a", "z"], ["a", "b"])
    assert str(path) in str(error.value)
    with pytest.raises(ValueError, match="another order"):
        graph_files.load_graph(str(path), ["a", "b"], ["b", "a"])
    with pytest.raises(ValueError, match="shape"):
        graph_files.load_graph(str(path.with_suffix(".npy")), ["a", "b", "c"], ["a", "b"])
    with pytest.raises(ValueError, match="does not exist"):
        graph_files.load_graph(str(tmp_path / "missing.npy"), ["a"], ["a"])
    np.save(tmp_path / "bad.npy", np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="non-finite"):
        graph_files.load_graph(str(tmp_path / "bad.npy"), ["a", "b"], ["a", "b"])
    with pytest.raises(ValueError, match="overwrite"):
        write_example(tmp_path, extra={"graph": 1})
