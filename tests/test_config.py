"""Config loading, overrides and validation. Run: `.venv/bin/python -m pytest tests/test_config.py`."""

import os

import pytest

from skillit_ray.config.job import JobConfig, config_from_dict, describe_keys, load_config
from skillit_ray.config.train import TrainConfig
from skillit_ray.train.preflight import check_config


def test_defaults_validate_and_yaml_plus_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  steps: 120\nmixture:\n  eta: 0.2\n  graph: [[1, 0], [1, 1]]\n")
    config = load_config(path, ["train.batch_size=16", "mixture.proportions=[1, 3]", "run.name=abc"])
    assert config.train.steps == 120 and config.train.batch_size == 16
    assert config.mixture.eta == 0.2 and config.mixture.graph == [[1.0, 0.0], [1.0, 1.0]]
    assert config.mixture.proportions == [1.0, 3.0] and config.run.name == "abc"
    assert isinstance(JobConfig().validate(), JobConfig)


def test_unknown_keys_list_the_valid_keys(tmp_path):
    with pytest.raises(ValueError, match=r"unknown key\(s\) train.stepz.*valid keys: steps, batch_size"):
        load_config(None, ["train.stepz=3"])
    with pytest.raises(ValueError, match=r"unknown key\(s\) trian.*valid keys: data, model"):
        config_from_dict({"trian": {}})


@pytest.mark.parametrize(
    "override, key",
    [
        ("mixture.eta=0", "mixture.eta"),
        ("mixture.eta=-1", "mixture.eta"),
        ("mixture.window=0", "mixture.window"),
        ("mixture.num_rounds=0", "mixture.num_rounds"),
        ("mixture.graph=[[1, 0], [1]]", "mixture.graph row 1"),
        ("mixture.graph=[[1, .nan]]", r"mixture.graph\[0\]\[1\]"),
        ("mixture.proportions=[0, 0]", "mixture.proportions"),
        ("mixture.proportions=[-1, 2]", r"mixture.proportions\[0\]"),
        ("train.steps=notanumber", "train.steps must be an integer"),
        ("train.steps=0", "train.steps"),
        ("data.path=data/x", r"data.path is now data.parquet.path .*or data.table.path"),
        ("mixture.aioli_ema=0.3", "mixture.aioli_ema is now mixture.aioli.ema"),
        ("graph.method=exhaustive", "graph.method"),
        ("run.local_ray=minimal", "run.local_ray"),
        ("scaling.num_workers=64", "train.batch_size"),
        ("mixture.setting=out_of_domain", "data.eval_skills"),
        ("train.use_gpu=true", "unknown key"),
        ("steps", "section.key=value"),
    ],
)
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ValueError, match=key):
        load_config(None, [override])


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        load_config(bad)


def test_round_boundaries_cover_every_step_once():
    for steps, rounds in [(10, 3), (6000, 6), (7, 7), (100, 1), (101, 4)]:
        train = TrainConfig(steps=steps)
        covered = []
        for round_index in range(rounds):
            start, end = train.steps_in_round(round_index, rounds)
            assert end > start
            covered.extend(range(start, end))
            assert all(train.round_of_step(step, rounds) == round_index for step in range(start, end))
        assert covered == list(range(steps))


def test_describe_keys_lists_dotted_keys():
    keys = describe_keys()
    assert "train.steps" in keys and "mixture.eta" in keys and "graph.method" in keys


def test_torch_backend_keeps_gloo_for_the_loops_cpu_collectives():
    assert load_config(None, []).scaling.resolved_torch_backend() == "gloo"
    gpu = load_config(None, ["scaling.use_gpu=true"])
    assert gpu.scaling.resolved_torch_backend() == "cpu:gloo,cuda:nccl"
    with pytest.raises(ValueError, match="scaling.torch_backend='nccl' has no gloo"):
        load_config(None, ["scaling.use_gpu=true", "scaling.torch_backend=nccl"])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["mixture.strategy=greedy"], "mixture.strategy='greedy' is not valid; choose one of aioli, anticurriculum"),
        (["mixture.strategy=random"], "needs mixture.proportions"),
        (["mixture.aioli.emma=0.1"], r"unknown key\(s\) mixture.aioli.emma .*valid keys: rounds_per_update"),
        (["mixture.aioli.ema=2"], r"mixture.aioli.ema=2.0 must be in \[0, 1\)"),
        (["mixture.aoili.ema=0.1"], "mixture.aoili is not a strategy's options section; valid sections: aioli"),
        (["data.source=parquet"], "data.source=parquet needs data.parquet.path"),
        (["data.source=parquets"], "data.source='parquets' is not valid; choose one of addition"),
        (["data.lego.num_varaibles=3"], r"unknown key\(s\) data.lego.num_varaibles .*valid keys: num_variables"),
        (
            ["data.parquet.split=positions", "data.pack_sequences=true", "data.source=parquet", "data.parquet.path=x"],
            "data.parquet.split=positions addresses one document per row",
        ),
        (["data.parquet.split=rows"], "data.parquet.split='rows' is not valid; choose one of files, positions"),
    ],
)
def test_options_of_sources_and_strategies_are_checked_by_their_stage_before_ray(overrides, message):
    config = load_config(None, overrides)  # the sections config owns are fine
    with pytest.raises(ValueError, match=message):
        check_config(config)


def test_relative_local_paths_become_absolute_when_the_config_loads(tmp_path, monkeypatch):
    # Ray Train workers and Tune trials run in other working directories: they must see the same files
    monkeypatch.chdir(tmp_path)
    config = load_config(
        None, ["data.parquet.path=data/text", "run.storage_path=s3://bucket/runs", "model.pretrained_path=~/m"]
    )
    assert config.data.options["parquet"]["path"] == str(tmp_path / "data" / "text")
    assert config.run.storage_path == "s3://bucket/runs"
    assert config.model.pretrained_path == os.path.expanduser("~/m")
    table = load_config(None, ["data.source=table", "data.table.path=hf:imdb", "data.table.skill_column=label"])
    assert table.data.options["table"]["path"] == "hf:imdb"
