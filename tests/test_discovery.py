"""Skill discovery: planted clusters are recovered, scores are right, bad input fails before Ray, and the
command writes a table that `prepare table` takes as it is."""

import dataclasses
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from skillit_ray.discovery.clustering import (
    adjusted_rand_index,
    check_discovery_request,
    fit_clusters,
    matching_accuracy,
    skill_names,
    trajectory_features,
)


def planted_trajectories(per_skill=(50, 40, 30), runs=3, checkpoints=4, noise=0.05, seed=0):
    """Loss trajectories of three skills: each learned at its own speed, with its own starting level."""
    rng = np.random.default_rng(seed)
    speeds, levels = (0.2, 0.6, 1.2), (6.0, 5.5, 6.5)
    steps = np.arange(1, checkpoints + 1)
    losses, truth = [], []
    for skill, count in enumerate(per_skill):
        curve = levels[skill] * np.exp(-speeds[skill] * steps)
        run_scale = 1.0 + 0.05 * rng.standard_normal((count, runs, 1))
        losses.append(curve[None, None, :] * run_scale + noise * rng.standard_normal((count, runs, checkpoints)))
        truth += [f"true_{skill}"] * count
    return np.concatenate(losses), np.array(truth)


@pytest.mark.parametrize("normalization", ["raw", "relative", "centered"])
def test_planted_skills_are_recovered_from_loss_trajectories(normalization):
    losses, truth = planted_trajectories()
    labels, summary = fit_clusters(trajectory_features(losses, normalization), 3, seed=0)
    assert matching_accuracy(truth, labels) == 1.0
    assert adjusted_rand_index(truth, labels) == pytest.approx(1.0)
    assert summary["cluster_sizes"] == [50, 40, 30]  # numbered largest first


def test_clusters_are_deterministic_given_the_seed_and_fitted_on_a_seeded_subset():
    losses, truth = planted_trajectories(per_skill=(200, 200, 200), noise=0.3)
    features = trajectory_features(losses)
    first, summary = fit_clusters(features, 3, seed=4, fit_rows=90)
    second, _ = fit_clusters(features, 3, seed=4, fit_rows=90)
    np.testing.assert_array_equal(first, second)
    assert summary["fit_rows"] == 90 and first.shape == (600,)
    assert matching_accuracy(truth, first) > 0.9  # every row is assigned, not only the fitted ones


def test_matching_accuracy_and_adjusted_rand_index_on_known_partitions():
    truth = ["a", "a", "b", "b", "c", "c"]
    assert matching_accuracy(truth, [2, 2, 0, 0, 1, 1]) == 1.0
    assert matching_accuracy(truth, [0, 0, 0, 0, 0, 0]) == pytest.approx(2 / 6)  # one cluster matches one skill
    assert matching_accuracy(truth, [0, 1, 0, 1, 2, 2]) == pytest.approx(4 / 6)
    assert adjusted_rand_index(truth, [5, 5, 7, 7, 9, 9]) == pytest.approx(1.0)
    assert adjusted_rand_index(truth, [0, 1, 0, 1, 0, 1]) < 0
    with pytest.raises(ValueError, match="one of each per row"):
        matching_accuracy(truth, [0, 1])


def test_bad_trajectories_and_requests_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="samples, runs, checkpoints"):
        trajectory_features(np.ones((4, 3)))
    with pytest.raises(ValueError, match="not finite"):
        trajectory_features(np.array([[[1.0, np.nan]]]))
    with pytest.raises(ValueError, match="not one of"):
        trajectory_features(np.ones((2, 1, 2)), "zscore")
    with pytest.raises(ValueError, match="at least 2 skills"):
        check_discovery_request(10, 1, "t.parquet")
    with pytest.raises(ValueError, match="fewer than --num-skills 5"):
        check_discovery_request(3, 5, "t.parquet")
    assert skill_names(np.array([0, 3, 11])) == ["skill_00", "skill_03", "skill_11"]


def two_skill_table(path, rows_per_skill=80):
    """Numbers and words: two skills a model tells apart within a few steps."""
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]
    texts, skills = [], []
    for _ in range(rows_per_skill):
        texts.append(" ".join(str(value) for value in rng.integers(0, 1000, size=12)))
        texts.append(" ".join(rng.choice(words, size=10)))
        skills += ["numbers", "words"]
    pq.write_table(pa.table({"text": texts, "source": skills}), path)
    return path


def test_bad_input_fails_before_ray_starts(tmp_path, capsys, monkeypatch):
    from skillit_ray.cli import main
    from skillit_ray.train import launch as train

    def no_ray(config):
        raise AssertionError("discover connected to Ray before checking its input")

    monkeypatch.setattr(train, "connect_ray", no_ray)

    table = str(two_skill_table(tmp_path / "t.parquet", rows_per_skill=2))
    common = ["discover", "--input", table, "--tokenizer-vocab-size", "300"]
    assert main(common + ["--num-skills", "1", "--out", str(tmp_path / "a")]) == 2
    assert "at least 2 skills" in capsys.readouterr().err
    assert main(common + ["--num-skills", "5", "--out", str(tmp_path / "b")]) == 2
    assert "4 rows, fewer than --num-skills 5" in capsys.readouterr().err
    assert main(common + ["--num-skills", "2", "--text-column", "body", "--out", str(tmp_path / "c")]) == 2
    error = capsys.readouterr().err
    assert "no text column 'body'" in error and "['text', 'source']" in error and "set --text-column" in error


def test_discover_writes_a_skill_table_that_prepare_takes(ray_local, tmp_path):
    from skillit_ray.data.prepare.table import TableOptions, prepare_table
    from skillit_ray.discovery.discover import DiscoverOptions, discover, recluster

    table = two_skill_table(tmp_path / "table.parquet")
    out = tmp_path / "discovered"
    options = DiscoverOptions(
        input=str(table), out=str(out), num_skills=2, true_skill_column="source", runs=2, steps=20, checkpoints=2,
        tokenizer_vocab_size=300, overrides=["data.sequence_length=32", "graph.cpus_per_trial=1"],
    )  # fmt: skip
    report = discover(options)
    written = pq.read_table(out / "discovered.parquet").to_pydict()
    assert written["row"] == list(range(160)) and set(written["true_skill"]) == {"numbers", "words"}
    assert set(written["skill"]) <= {"skill_00", "skill_01"} and len(written["embedding_skill"]) == 160
    arrays = np.load(out / "trajectories.npz")
    assert arrays["losses"].shape == (160, 2, 2) and np.all(np.isfinite(arrays["losses"]))
    assert report["checkpoint_steps"] == [10, 20]
    saved = json.loads((out / "discovery.json").read_text())
    for method in ("loss_trajectories", "embeddings"):
        assert 0.5 <= saved["methods"][method]["accuracy"] <= 1.0  # two skills: a best match gets half or more
        assert sum(saved["methods"][method]["cluster_sizes"]) == 160
    manifest = prepare_table(TableOptions(input=str(out / "discovered.parquet"), out=str(tmp_path / "prepared"),
                                          val_rows=4, tokenizer=str(out / "tokenizer")))  # fmt: skip
    assert json.loads(manifest.read_text())["skills"] == sorted(set(written["skill"]))
    # --recluster: new K and normalization on the same trajectories, no new runs
    again = recluster(dataclasses.replace(options, num_skills=3, normalization="raw"))
    assert again["options"]["num_skills"] == 3 and again["options"]["normalization"] == "raw"
    assert len(again["methods"]["loss_trajectories"]["cluster_sizes"]) == 3
    assert set(pq.read_table(out / "discovered.parquet").column("skill").to_pylist()) <= {"skill_00", "skill_01",
                                                                                           "skill_02"}  # fmt: skip
    np.testing.assert_array_equal(np.load(out / "trajectories.npz")["losses"], arrays["losses"])


@pytest.mark.slow
def test_discover_is_deterministic_given_the_seed(ray_local, tmp_path):
    from skillit_ray.discovery.discover import DiscoverOptions, discover

    table = two_skill_table(tmp_path / "table.parquet", rows_per_skill=30)
    outputs = []
    for name in ("first", "second"):
        options = DiscoverOptions(input=str(table), out=str(tmp_path / name), num_skills=2, runs=2, steps=10,
                                  checkpoints=2, tokenizer_vocab_size=300, seed=3,
                                  overrides=["data.sequence_length=32", "graph.cpus_per_trial=1"])  # fmt: skip
        discover(options)
        outputs.append(np.load(tmp_path / name / "trajectories.npz"))
    for key in ("losses", "embeddings", "loss_labels", "embedding_labels"):
        np.testing.assert_array_equal(outputs[0][key], outputs[1][key])
