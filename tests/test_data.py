"""Per-skill streams and batch assembly: exact counts, disjoint ranks, clear errors on bad shards.

Run: `.venv/bin/python -m pytest tests/test_data.py`.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import small_config

from skillit_ray.data.assembly import BatchAssembler
from skillit_ray.data.source import SkillSetup
from skillit_ray.data.sources.registry import load_skill_tokenizer, load_validation_sets, resolve_skills
from skillit_ray.data.streams import ParquetSkillStream, PositionalParquetSkillStream
from skillit_ray.data.tokens import encode_texts
from skillit_ray.mixture.quotas import round_quotas, round_skill_schedule, split_quotas_across_ranks


def rows_as_set(rows: np.ndarray) -> Counter:
    return Counter(tuple(row) for row in rows.tolist())


def test_generator_batches_follow_quotas_and_do_not_depend_on_worker_count(tmp_path):
    config = small_config(tmp_path, "train.batch_size=12")
    setup = resolve_skills(config)
    tokenizer = load_skill_tokenizer(setup)
    quotas = round_quotas([0.1, 0.7, 0.2], 4 * 12)
    schedule = round_skill_schedule(quotas, seed=0, round_index=0)
    global_rows = {}
    for world_size in (1, 2, 3):
        assemblers = [BatchAssembler(config, setup, tokenizer, rank, world_size) for rank in range(world_size)]
        rows, achieved_total = [], np.zeros(3, dtype=int)
        for step in range(4):
            counts = split_quotas_across_ranks(schedule[step * 12 : (step + 1) * 12], 3, world_size)
            for assembler in assemblers:
                batch, achieved = assembler.next_batch(counts, step)
                np.testing.assert_array_equal(achieved, counts[assembler.rank])
                assert batch.shape == (counts[assembler.rank].sum(), 28)
                rows.append(batch)
                achieved_total += achieved
        np.testing.assert_array_equal(achieved_total, quotas)
        global_rows[world_size] = rows_as_set(np.concatenate(rows))
    # the same global samples whatever the number of workers; no sample twice
    assert global_rows[1] == global_rows[2] == global_rows[3]
    assert max(global_rows[1].values()) == 1


def test_parquet_streams_are_disjoint_across_ranks_and_restart_epochs(ray_local, lego_dataset, tmp_path, caplog):
    config = small_config(
        tmp_path, "data.source=parquet", f"data.parquet.path={lego_dataset}", "data.parquet.shuffle_buffer_rows=16"
    )
    setup = resolve_skills(config)
    tokenizer = load_skill_tokenizer(setup)
    per_rank = []
    for rank in range(2):
        stream = ParquetSkillStream(setup, "lego_2", tokenizer, config, rank, 2)
        per_rank.append(stream.take(90))  # a rank owns 2 or 3 of the 5 parts (80 or 120 rows)
    first, second = rows_as_set(per_rank[0][:80]), rows_as_set(per_rank[1][:80])
    assert not (set(first) & set(second)), "ranks read overlapping rows"
    rank0 = ParquetSkillStream(setup, "lego_2", tokenizer, config, 0, 2)
    with caplog.at_level("INFO"):
        epoch_rows = rank0.take(120 + 10)  # rank 0 owns parts 0, 2, 4: 120 rows, then a new epoch
    assert rank0.epoch == 1 and "starting epoch 1" in caplog.text
    first_epoch = rows_as_set(epoch_rows[:120])
    assert len(first_epoch) == 120  # every row of the rank's 3 parts once
    assert set(rows_as_set(epoch_rows[120:])) <= set(first_epoch)  # the new epoch replays the same rows


@pytest.mark.parametrize(  # 7 ranks > 5 parts: row striding (32 s with Ray Data on 2 cores: slow)
    "rank, world_size", [(1, 2), pytest.param(6, 7, marks=pytest.mark.slow)]
)
def test_arrow_reader_yields_the_ray_data_rows_in_the_same_order(ray_local, lego_dataset, tmp_path, rank, world_size):
    streams = {}
    for reader in ("ray_data", "arrow"):
        config = small_config(
            tmp_path, "data.source=parquet", f"data.parquet.path={lego_dataset}", f"data.parquet.reader={reader}"
        )
        setup = resolve_skills(config)
        streams[reader] = ParquetSkillStream(setup, "lego_3", load_skill_tokenizer(setup), config, rank, world_size)
    assert streams["ray_data"].reader == "ray_data" and streams["arrow"].reader == "arrow"
    rows = {reader: stream.take(230) for reader, stream in streams.items()}  # past the end of an epoch
    np.testing.assert_array_equal(rows["arrow"], rows["ray_data"])
    assert streams["arrow"].epoch == streams["ray_data"].epoch >= 1


def test_parquet_reader_auto_switches_to_arrow_for_many_skills(lego_dataset, tmp_path):
    config = small_config(tmp_path, "data.source=parquet", f"data.parquet.path={lego_dataset}")
    setup = resolve_skills(config)
    assert ParquetSkillStream(setup, "lego_1", load_skill_tokenizer(setup), config, 0, 1).reader == "ray_data"
    many = SkillSetup(**{**setup.to_dict(), "train_skills": setup.train_skills * 11})  # 33 > RAY_DATA_MAX_SKILLS
    assert ParquetSkillStream(many, "lego_1", load_skill_tokenizer(setup), config, 0, 1).reader == "arrow"


def test_parquet_stream_resume_continues_exactly(ray_local, lego_dataset, tmp_path):
    config = small_config(tmp_path, "data.source=parquet", f"data.parquet.path={lego_dataset}")
    setup = resolve_skills(config)
    tokenizer = load_skill_tokenizer(setup)
    uninterrupted = ParquetSkillStream(setup, "lego_1", tokenizer, config, 0, 1)
    expected = uninterrupted.take(70)
    first = ParquetSkillStream(setup, "lego_1", tokenizer, config, 0, 1)
    head = first.take(30)
    resumed = ParquetSkillStream(setup, "lego_1", tokenizer, config, 0, 1)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    np.testing.assert_array_equal(np.concatenate([head, resumed.take(40)]), expected)


def test_validation_sets_from_parquet_have_answers(lego_dataset, tmp_path):
    config = small_config(tmp_path, "data.source=parquet", f"data.parquet.path={lego_dataset}")
    setup = resolve_skills(config)
    sets = load_validation_sets(config, setup, load_skill_tokenizer(setup))
    assert [s.skill for s in sets] == ["lego_1", "lego_2", "lego_3"]
    assert all(len(s.samples) == 20 and s.samples[0].answer in "01" for s in sets)


@pytest.fixture
def broken_copy(lego_dataset, tmp_path):
    target = tmp_path / "data"
    shutil.copytree(lego_dataset, target)
    return target


def test_missing_skill_directory_names_the_path(broken_copy, tmp_path):
    shutil.rmtree(broken_copy / "train" / "lego_2")
    with pytest.raises(ValueError, match=r"lego_2.*train/lego_2"):
        resolve_skills(small_config(tmp_path, "data.source=parquet", f"data.parquet.path={broken_copy}"))


def test_empty_shards_are_rejected(broken_copy, tmp_path):
    for part in (broken_copy / "train" / "lego_1").glob("*.parquet"):
        pq.write_table(pa.table({"text": pa.array([], pa.string())}), part)
    with pytest.raises(ValueError, match="only empty parquet files"):
        resolve_skills(small_config(tmp_path, "data.source=parquet", f"data.parquet.path={broken_copy}"))


def test_parquet_without_text_column_names_file_and_fix(broken_copy, tmp_path):
    part = sorted((broken_copy / "train" / "lego_3").glob("*.parquet"))[0]
    pq.write_table(pa.table({"body": ["a b c"]}), part)
    with pytest.raises(ValueError, match=r"part-00000.parquet.*data.parquet.text_column"):
        resolve_skills(small_config(tmp_path, "data.source=parquet", f"data.parquet.path={broken_copy}"))


def test_corrupt_parquet_names_the_file(broken_copy, tmp_path):
    part = sorted((broken_copy / "val" / "lego_1").glob("*.parquet"))[0]
    part.write_bytes(b"this is not parquet")
    with pytest.raises(ValueError, match=r"val/lego_1/part-00000.parquet is not a readable parquet"):
        resolve_skills(small_config(tmp_path, "data.source=parquet", f"data.parquet.path={broken_copy}"))


def test_unknown_skill_names_available_skills(tmp_path):
    with pytest.raises(ValueError, match=r"\['lego_9'\].*available skills"):
        resolve_skills(small_config(tmp_path, "data.train_skills=[lego_1, lego_9]"))


def test_skewed_weights_and_many_skills_do_not_stall(tmp_path):
    """1000:1 weights: the rare skill still gets its exact share; skills with quota 0 are never opened."""
    config = small_config(tmp_path, "data.lego.num_variables=20", "train.batch_size=64", "data.sequence_length=120")
    setup = resolve_skills(config)
    weights = np.r_[1000.0, np.ones(19)]
    quotas = round_quotas(weights, 64 * 30)
    schedule = round_skill_schedule(quotas, 0, 0)
    assembler = BatchAssembler(config, setup, load_skill_tokenizer(setup), 0, 1)
    total = np.zeros(20, dtype=int)
    for step in range(30):
        _, achieved = assembler.next_batch(
            split_quotas_across_ranks(schedule[step * 64 : (step + 1) * 64], 20, 1), step
        )
        total += achieved
    np.testing.assert_array_equal(total, quotas)
    assert set(assembler.streams) == {setup.train_skills[i] for i in np.flatnonzero(quotas)}


def write_text_skills(root, num_skills: int, rows_per_skill: int):
    """A parquet dataset of `num_skills` text skills (one part file each), with manifest and tokenizer."""
    from skillit_ray.skills.tokenizer import build_tokenizer, save_tokenizer

    words = [f"w{index}" for index in range(40)]
    save_tokenizer(build_tokenizer(words), root / "tokenizer")
    skills = [f"skill_{index:03d}" for index in range(num_skills)]
    for skill_index, skill in enumerate(skills):
        texts = [" ".join(words[(skill_index + row + k) % 40] for k in range(6)) for row in range(rows_per_skill)]
        for split in ("train", "val"):
            (root / split / skill).mkdir(parents=True)
            pq.write_table(pa.table({"text": texts}), root / split / skill / "part-00000.parquet")
    (root / "manifest.json").write_text(json.dumps({"source": "parquet", "skills": skills}))
    return skills


def test_hundreds_of_parquet_skills_stream_in_process_with_exact_quotas(tmp_path):
    """200 skills: `data.parquet.reader=auto` reads with pyarrow (no Ray here at all), every quota is met."""
    skills = write_text_skills(tmp_path / "data", 200, rows_per_skill=8)
    config = small_config(
        tmp_path, "data.source=parquet", f"data.parquet.path={tmp_path / 'data'}", "train.batch_size=64"
    )
    setup = resolve_skills(config)
    quotas = round_quotas(np.ones(200), 64 * 10)
    schedule = round_skill_schedule(quotas, 0, 0)
    assemblers = [BatchAssembler(config, setup, load_skill_tokenizer(setup), rank, 2) for rank in range(2)]
    total = np.zeros(200, dtype=int)
    for step in range(10):
        counts = split_quotas_across_ranks(schedule[step * 64 : (step + 1) * 64], 200, 2)
        for assembler in assemblers:
            rows, achieved = assembler.next_batch(counts, step)
            assert rows.shape == (achieved.sum(), config.data.sequence_length)
            total += achieved
    np.testing.assert_array_equal(total, quotas)
    opened = [stream for assembler in assemblers for stream in assembler.streams.values()]
    assert len(opened) > 200 and {stream.reader for stream in opened} == {"arrow"}
    assert len(skills) == len(setup.train_skills) == 200


def test_positional_parquet_epochs_cover_every_row_once_in_a_new_order(lego_dataset, tmp_path, caplog):
    config = small_config(
        tmp_path, "data.source=parquet", f"data.parquet.path={lego_dataset}", "data.parquet.split=positions"
    )
    setup = resolve_skills(config)
    tokenizer = load_skill_tokenizer(setup)
    stream = PositionalParquetSkillStream(setup, "lego_2", tokenizer, config)
    texts = pq.read_table(lego_dataset / "train" / "lego_2", columns=["text"]).column("text").to_pylist()
    every_row = rows_as_set(encode_texts(tokenizer, texts, config.data.sequence_length))
    first_epoch = np.concatenate([stream.take(70, 0), stream.take(130, 70)])  # 200 rows per skill
    with caplog.at_level("INFO"):
        second_epoch = stream.take(200, 200)
    assert rows_as_set(first_epoch) == rows_as_set(second_epoch) == every_row
    assert not np.array_equal(first_epoch, second_epoch) and "starting epoch 1" in caplog.text
    np.testing.assert_array_equal(stream.take(5, 3), first_epoch[3:8])  # going back re-reads the epoch


def test_positional_parquet_batches_do_not_depend_on_worker_count_or_a_resume(lego_dataset, tmp_path):
    """Every step trains the same rows with 1, 2 or 3 workers, and after a 2 -> 3 worker resume."""
    overrides = (
        "data.source=parquet",
        f"data.parquet.path={lego_dataset}",
        "data.parquet.split=positions",
        "train.batch_size=12",
    )
    config = small_config(tmp_path, *overrides, "data.parquet.shuffle_buffer_rows=16")
    setup = resolve_skills(config)
    tokenizer = load_skill_tokenizer(setup)
    quotas = round_quotas([0.1, 0.7, 0.2], 30 * 12)  # lego_2 takes 252 > 200 rows: it wraps an epoch
    schedule = round_skill_schedule(quotas, seed=0, round_index=0)

    def run_steps(assemblers, steps):
        per_step = []
        for step in steps:
            counts = split_quotas_across_ranks(schedule[step * 12 : (step + 1) * 12], 3, len(assemblers))
            batches = [assembler.next_batch(counts, step)[0] for assembler in assemblers]
            per_step.append(rows_as_set(np.concatenate(batches)))
        return per_step

    def assemblers(world_size):
        return [BatchAssembler(config, setup, tokenizer, rank, world_size) for rank in range(world_size)]

    reference = run_steps(assemblers(1), range(30))
    assert run_steps(assemblers(2), range(30)) == run_steps(assemblers(3), range(30)) == reference
    before = assemblers(2)
    head = run_steps(before, range(12))
    after = assemblers(3)
    for assembler in after:
        assembler.load_state_dict(json.loads(json.dumps(before[0].state_dict())))
    assert head + run_steps(after, range(12, 30)) == reference


def test_training_loop_trains_exact_quotas_from_positional_parquet(lego_dataset, tmp_path):
    from skillit_ray.train.local import run_local_training

    config = small_config(
        tmp_path, "data.source=parquet", f"data.parquet.path={lego_dataset}", "data.parquet.split=positions"
    )
    rounds = run_local_training(config)["rounds"]
    for record in rounds:
        start, end = config.train.steps_in_round(record["round"], config.mixture.num_rounds)
        assert record["achieved_counts"] == round_quotas(record["weights"], (end - start) * 8).tolist()
    assert len(rounds) == config.mixture.num_rounds
