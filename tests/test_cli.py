"""The `skillit-ray` command line: help, keys, clear errors before Ray starts, prepare.

Run: `.venv/bin/python -m pytest tests/test_cli.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys

from skillit_ray.cli import main


def test_help_lists_every_subcommand():
    completed = subprocess.run(
        [sys.executable, "-m", "skillit_ray.cli", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("prepare", "train", "graph", "tune", "pipeline", "demo", "keys"):
        assert command in completed.stdout


def test_keys_lists_dotted_keys(capsys):
    assert main(["keys"]) == 0
    assert "mixture.eta" in capsys.readouterr().out


def test_bad_config_exits_2_with_the_key(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("mixture:\n  eta: -1\n")
    assert main(["train", "--config", str(path)]) == 2
    assert "mixture.eta" in capsys.readouterr().err


def test_missing_graph_file_fails_before_ray(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(f"mixture:\n  graph_path: {tmp_path}/nope.json\n")
    assert main(["train", "--config", str(path)]) == 2
    assert "nope.json" in capsys.readouterr().err


def test_prepare_writes_manifest_and_shards(tmp_path):
    out = tmp_path / "addition"
    assert main(["prepare", "addition", "--out", str(out), "--rows-per-skill", "30", "--rows-per-part", "10"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skills"] == ["addition_1", "addition_2", "addition_3"]
    assert len(list((out / "train" / "addition_2").glob("*.parquet"))) == 3
    assert (out / "tokenizer").is_dir() and (out / "val" / "addition_3" / "part-00000.parquet").is_file()


def test_gpu_job_on_a_cpu_only_shape_is_refused(tmp_path, capsys):
    cluster = tmp_path / "cpu_only.yaml"
    cluster.write_text(
        "cluster_name: cpu\nprovider: {type: aws, region: us-west-2}\nmax_workers: 2\n"
        "available_node_types:\n  head: {node_config: {InstanceType: m6i.large}, resources: {CPU: 2}}\n"
        "head_node_type: head\n"
    )
    arguments = [
        "train",
        "--config",
        "jobs/configs/smoke.yaml",
        "--set",
        "scaling.use_gpu=true",
        "--cluster",
        str(cluster),
    ]
    assert main(arguments) == 2
    assert "GPU" in capsys.readouterr().err
