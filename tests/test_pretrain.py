"""`skillit-ray pretrain` and the lookup chains it pre-trains a LEGO base on.

Checks that lookup sentences are LEGO sentences without negation whose asked variable is the
named number of hops from its root (solved by LEGO's independent parser), that they share LEGO's
token ids, that an existing `--out` is refused before Ray starts, and that a base trained with Ray
Train is saved with its final weights and tokenizer and that a LEGO run continues from it.
Run: `.venv/bin/python -m pytest tests/test_pretrain.py`.
"""

from __future__ import annotations

import io
import json

import pytest
import torch
from conftest import small_config

from skillit_ray.cli import main
from skillit_ray.config.job import load_config
from skillit_ray.data.storage import RunStorage
from skillit_ray.skills.lego import solve_lego
from skillit_ray.skills.registry import get_skill_generator
from skillit_ray.skills.tokenizer import build_tokenizer
from skillit_ray.train.checkpoint import newest_whole_checkpoint
from skillit_ray.train.preflight import check_config


def _clauses(prompt: str) -> dict[str, str]:
    body = prompt[len("Input:") : prompt.index(". Output:")]
    return {words[0]: words[3] for words in (clause.split() for clause in body.split(","))}


@pytest.mark.parametrize("num_chains", [2, 3])
def test_lookup_answers_are_the_asked_chains_root_and_the_words_are_legos(num_chains):
    lookup = get_skill_generator("lookup", num_variables=4, num_chains=num_chains)
    lego = get_skill_generator("lego", num_variables=4)
    assert build_tokenizer(lookup.vocabulary()).get_vocab() == build_tokenizer(lego.vocabulary()).get_vocab()
    assert lookup.skill_names == ["lookup_1", "lookup_2", "lookup_3", "lookup_4"]
    for skill in range(4):
        for index in range(40):
            sample = lookup.sample_by_index(skill, index, seed=3)
            asked = sample.prompt.split("Output: ")[1].split()[0]
            assert solve_lego(sample.text)[asked] == int(sample.answer)  # LEGO's own parser agrees
            assert " not " not in sample.prompt
            clauses = _clauses(sample.prompt)
            assert len(clauses) == 4 * num_chains
            assert {"0", "1"} <= set(clauses.values())  # roots differ: no single clause gives the answer away
            hops, name = 0, asked
            while clauses[name] not in ("0", "1"):
                name, hops = clauses[name], hops + 1
            assert hops == skill


def test_lookup_options_out_of_range_name_the_key():
    with pytest.raises(ValueError, match="data.lookup.num_chains=1 must be >= 2"):
        check_config(load_config(None, ["data.source=lookup", "data.lookup.num_chains=1"]))
    with pytest.raises(ValueError, match="data.lookup.num_chains \\* data.lookup.num_variables <= 26"):
        check_config(
            load_config(None, ["data.source=lookup", "data.lookup.num_chains=6", "data.lookup.num_variables=5"])
        )


def test_an_existing_out_is_refused_before_ray_starts(tmp_path, monkeypatch, capsys):
    import skillit_ray.train.launch

    def no_ray(*_):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(skillit_ray.train.launch, "connect_ray", no_ray)
    (tmp_path / "base").mkdir()
    code = main(["pretrain", "--config", "jobs/configs/lookup_pretrain.yaml", "--out", str(tmp_path / "base")])
    assert code == 2 and "pass --overwrite" in capsys.readouterr().err


def test_pretrain_saves_the_final_weights_and_lego_continues_from_them(ray_local, tmp_path):
    from skillit_ray.train.local import run_local_training
    from skillit_ray.train.model import build_model
    from skillit_ray.train.pretrain import pretrain

    config = load_config(None, [
        "data.source=lookup", "data.lookup.num_variables=3", "data.num_val_per_skill=10", "model.size=tiny",
        "train.steps=4", "train.batch_size=8", "train.eval_every_n_steps=2", "train.warmup_steps=1",
        "mixture.strategy=stratified", "mixture.num_rounds=1", f"run.storage_path={tmp_path}", "run.name=base",
    ])  # fmt: skip
    base = tmp_path / "base-model"
    record = pretrain(config, str(base))
    assert record["steps"] == 4 and record["skills"] == ["lookup_1", "lookup_2", "lookup_3"]
    assert json.loads((base / "pretrain.json").read_text())["per_skill_accuracy"] == record["per_skill_accuracy"]
    assert (base / "config.json").is_file() and (base / "tokenizer.json").is_file()
    assert not (tmp_path / ".base-model.staging").exists()
    assert record["export"].endswith("base/model")  # the run's export (train.export_model), copied whole
    assert (base / "model.safetensors").is_file()
    step, directory, _ = newest_whole_checkpoint(RunStorage(str(tmp_path), "base"))
    final = torch.load(io.BytesIO(RunStorage(str(tmp_path), "base").read_bytes(f"{directory}/model.pt")),
                       weights_only=True)  # fmt: skip
    vocabulary = final["transformer.wte.weight"].shape[0]
    loaded = build_model("tiny", vocabulary, record["sequence_length"], pretrained_path=str(base))
    for name, tensor in loaded.state_dict().items():
        torch.testing.assert_close(tensor, final[name], rtol=0, atol=0)
    lego = small_config(tmp_path, f"model.pretrained_path={base}", "train.steps=2", "train.eval_every_n_steps=2",
                        "mixture.strategy=stratified", "mixture.num_rounds=1", "run.name=lego")  # fmt: skip
    records = run_local_training(lego)
    assert [evaluation["step"] for evaluation in records["evaluations"]] == [0, 2]


def test_the_transfer_experiments_run_every_mix_and_start_with_three_seeds(tmp_path):
    """A few steps of each (the figures are in the README): every run lands, the summaries have every mix."""
    from skillit_ray.benchmarks.prerequisites import PREREQUISITE_MIXES, prerequisites

    threads = torch.get_num_threads()
    try:
        result = prerequisites(str(tmp_path), steps=4, eval_every=2, workers=0)
    finally:
        torch.set_num_threads(threads)
    assert set(result["targets"]) == set(PREREQUISITE_MIXES)
    for target, mixes in PREREQUISITE_MIXES.items():
        for label in mixes:
            entry = result["targets"][target][label]
            assert len(entry["steps_to_target"]) == 3 and 0 <= entry["final_mean"] <= 1
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 12


def test_pretrain_under_fsdp_needs_the_export_and_says_so_before_ray_starts(tmp_path, monkeypatch):
    import skillit_ray.train.launch
    from skillit_ray.train.pretrain import pretrain

    def no_ray(*_):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(skillit_ray.train.launch, "connect_ray", no_ray)
    config = load_config("jobs/configs/lookup_pretrain.yaml", ["train.parallelism=fsdp", "train.export_model=false"])
    with pytest.raises(ValueError, match="train.parallelism=fsdp with train.export_model=false.*export_model=true"):
        pretrain(config, str(tmp_path / "base"))
    assert not (tmp_path / "base").exists() and not (tmp_path / ".base.staging").exists()
