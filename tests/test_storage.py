"""Run storage through pyarrow filesystems: the same code path serves s3:// and gs:// (here file://).

Run: `.venv/bin/python -m pytest tests/test_storage.py`.
"""

from __future__ import annotations

import os

import pytest

from skillit_ray.data.storage import RunStorage, atomic_write_bytes


def test_uri_storage_goes_through_pyarrow(tmp_path):
    storage = RunStorage(f"file://{tmp_path}", "run")
    assert not storage.is_local
    storage.write_text("summary.json", "{}")
    storage.write_text("checkpoint_1/train_state.json", '{"step": 4}')
    assert storage.exists("summary.json") and not storage.exists("nope.json")
    assert storage.read_text("checkpoint_1/train_state.json") == '{"step": 4}'
    assert storage.list_directories("checkpoint_") == ["checkpoint_1"]
    assert storage.uri("summary.json") == f"file://{tmp_path}/run/summary.json"
    assert (tmp_path / "run" / "summary.json").read_text() == "{}"


def test_local_storage_is_absolute_and_writes_atomically(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage = RunStorage("runs", "demo")
    assert storage.is_local and storage.train_storage_path() == str(tmp_path / "runs")
    storage.write_text("mixture.jsonl", "a\n")
    storage.write_text("mixture.jsonl", "b\n")
    assert (tmp_path / "runs" / "demo" / "mixture.jsonl").read_text() == "b\n"
    assert os.listdir(tmp_path / "runs" / "demo") == ["mixture.jsonl"]  # no temporary file left


def test_failed_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "train_state.json"
    target.write_text("old")

    def failing_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    assert target.read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["train_state.json"]  # temporary file removed
