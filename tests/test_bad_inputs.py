"""Bad input gets a clear error naming the key, file or value and the fix, before Ray starts (the rows of
the README's bad-input table that no other test file covers).
Run: `.venv/bin/python -m pytest tests/test_bad_inputs.py`.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import small_config

from skillit_ray.cli import main
from skillit_ray.graph.files import load_graph
from skillit_ray.train.local import run_local_training
from skillit_ray.train.model import build_model


def test_a_garbage_npy_graph_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "graph.npy"
    np.save(path, np.array([{"not": "numbers"}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"graph.npy' is not a numeric .npy array .*numpy.save"):
        load_graph(str(path), ["a"], ["a"])


def test_a_malformed_graph_json_names_the_file_and_the_line(tmp_path):
    path = tmp_path / "graph.json"
    path.write_text('{\n  "graph": [[1, 0],\n  oops\n}\n')
    with pytest.raises(ValueError, match=r"graph.json' is not valid JSON \(line 3, column 3"):
        load_graph(str(path), ["a", "b"], ["a", "b"])


def test_a_pretrained_directory_without_weights_is_refused(tmp_path):
    build_model("tiny", 40, 32).config.save_pretrained(tmp_path)  # config.json only
    with pytest.raises(ValueError, match="has a config.json but no weights"):
        run_local_training(small_config(tmp_path, f"model.pretrained_path={tmp_path}"))


def test_prepare_into_a_non_empty_directory_is_refused_unless_overwrite(tmp_path, capsys):
    arguments = ["prepare", "addition", "--out", str(tmp_path / "data"), "--rows-per-skill", "10"]
    assert main(arguments) == 0
    (tmp_path / "data" / "stale.parquet").write_text("old")
    assert main(arguments) == 2
    assert "is not empty" in capsys.readouterr().err and (tmp_path / "data" / "stale.parquet").exists()
    assert main([*arguments, "--overwrite"]) == 0
    assert not (tmp_path / "data" / "stale.parquet").exists()


def test_a_non_finite_loss_stops_the_run_with_step_batch_and_learning_rate(tmp_path):
    config = small_config(tmp_path, "train.learning_rate=1e6", "train.steps=30", "train.log_every_n_steps=5")
    with pytest.raises(
        ValueError,
        match=r"(training|validation) loss became (nan|non-finite) at step \d+ \(learning rate .*batch: lego_",
    ):
        run_local_training(config)
