"""The token store: `prepare tokens` (in process and as a Ray Data job), the tokens source, its refusals,
object storage on a real S3 API (moto's server on loopback, ended by its pid)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import small_config

from skillit_ray.data.assembly import BatchAssembler
from skillit_ray.data.prepare.tokens import TokenStoreOptions, prepare_in_process
from skillit_ray.data.sources.registry import load_skill_tokenizer, resolve_skills
from skillit_ray.data.store import MANIFEST_FILE, RECORDS_DIRECTORY, file_sizes, storage_filesystem
from skillit_ray.data.tokenizer import train_bpe_tokenizer
from skillit_ray.mixture.quotas import round_quotas, round_skill_schedule, split_quotas_across_ranks
from skillit_ray.train.resolve import resolve_run

STORE = ("data.source=tokens", "data.sequence_length=0")


@pytest.fixture(scope="module")
def lego_store(lego_dataset, tmp_path_factory):
    """The LEGO-3 directory (5 parts of 40 rows a skill) as a token store of 28-token rows."""
    out = tmp_path_factory.mktemp("store") / "lego"
    prepare_in_process(TokenStoreOptions(str(lego_dataset), str(out), sequence_length=28))
    return out


def store_config(tmp_path, store, *overrides):
    return small_config(tmp_path, *STORE, f"data.tokens.path={store}", *overrides)


def store_files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_a_run_from_the_store_equals_the_run_from_positional_parquet(lego_dataset, lego_store, tmp_path):
    """Same rows in the same order (the positional rule over one shard per part), and so the same run:
    mixtures, counts and validation losses (a one-token answer is scored alone in both)."""
    from skillit_ray.train.local import run_local_training

    parquet = small_config(tmp_path, "data.source=parquet", f"data.parquet.path={lego_dataset}",
                           "data.parquet.split=positions", "data.parquet.shuffle_buffer_rows=16")  # fmt: skip
    tokens, setup = resolve_run(store_config(tmp_path, lego_store, "data.tokens.shuffle_window_rows=16"))
    assert (tokens.data.sequence_length, tokens.data.pack_sequences) == (28, False)
    parquet_setup = resolve_skills(parquet)
    schedule = round_skill_schedule(round_quotas([0.1, 0.7, 0.2], 30 * 12), seed=0, round_index=0)
    for world_size in (1, 2):
        pairs = [
            (BatchAssembler(parquet, parquet_setup, load_skill_tokenizer(parquet_setup), rank, world_size),
             BatchAssembler(tokens, setup, load_skill_tokenizer(setup), rank, world_size))
            for rank in range(world_size)
        ]  # fmt: skip
        for step in range(30):  # lego_2 takes 252 > 200 rows: the second epoch too
            counts = split_quotas_across_ranks(schedule[step * 12 : (step + 1) * 12], 3, world_size)
            for from_parquet, from_store in pairs:
                expected, got = from_parquet.next_batch(counts, step), from_store.next_batch(counts, step)
                assert got[0].dtype == np.int32
                np.testing.assert_array_equal(got[0], expected[0])
                np.testing.assert_array_equal(got[1], expected[1])
    run_parquet = run_local_training(small_config(tmp_path, "data.source=parquet", f"data.parquet.path={lego_dataset}",
                                                  "data.parquet.split=positions", "run.name=parquet"))  # fmt: skip
    run_store = run_local_training(store_config(tmp_path, lego_store, "run.name=store"))
    for got, expected in zip(run_store["rounds"], run_parquet["rounds"], strict=True):
        assert got["achieved_counts"] == expected["achieved_counts"]
        np.testing.assert_allclose(got["weights"], expected["weights"], rtol=1e-6)
        np.testing.assert_allclose(got["val_loss"], expected["val_loss"], rtol=1e-6)


def test_store_batches_are_the_same_for_one_two_one_workers_across_resumes(lego_store, tmp_path):
    config, setup = resolve_run(store_config(tmp_path, lego_store, "data.tokens.shuffle_window_rows=7"))
    tokenizer = load_skill_tokenizer(setup)
    schedule = round_skill_schedule(round_quotas([0.2, 0.5, 0.3], 40 * 12), seed=3, round_index=0)

    def assemblers(world_size, state=None):
        made = [BatchAssembler(config, setup, tokenizer, rank, world_size) for rank in range(world_size)]
        for assembler in made if state else ():
            assembler.load_state_dict(json.loads(json.dumps(state)))
        return made

    def run(made, steps):
        out = []
        for step in steps:
            counts = split_quotas_across_ranks(schedule[step * 12 : (step + 1) * 12], 3, len(made))
            out.append(sorted(map(bytes, np.concatenate([a.next_batch(counts, step)[0] for a in made]))))
        return out

    reference = run(assemblers(1), range(40))
    one = assemblers(1)
    first = run(one, range(10))
    two = assemblers(2, one[0].state_dict())
    second = run(two, range(10, 25))
    third = run(assemblers(1, two[1].state_dict()), range(25, 40))
    assert first + second + third == reference


def test_ray_data_prepare_resumes_a_killed_prepare_and_writes_the_same_bytes(ray_local, tmp_path):
    """A prepare killed with SIGKILL mid-way (real process, many small parts), then the Ray Data job:
    the same store, byte for byte, as one uninterrupted prepare; no half-written shard was visible."""
    from skillit_ray.data.tokenize_job import run_prepare_tokens

    source = many_part_directory(tmp_path / "input", skills=3, parts=300)
    whole = tmp_path / "whole"
    prepare_in_process(TokenStoreOptions(str(source), str(whole)))
    killed = tmp_path / "killed"
    code = ("from skillit_ray.data.prepare.tokens import TokenStoreOptions, prepare_in_process; "
            f"prepare_in_process(TokenStoreOptions({str(source)!r}, {str(killed)!r}))")  # fmt: skip
    process = subprocess.Popen([sys.executable, "-c", code])
    records = killed / RECORDS_DIRECTORY
    deadline = time.monotonic() + 120
    while len(list(records.rglob("*.json"))) < 50 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    written = len(list(records.rglob("*.json")))
    assert not (killed / MANIFEST_FILE).exists() and 50 <= written < 600, written
    for record in records.rglob("*.json"):  # every recorded shard is whole
        entry = json.loads(record.read_text())
        assert (killed / entry["split"] / entry["skill"] / f"{entry['shard']}.tokens").stat().st_size == entry["bytes"]
    result = run_prepare_tokens(TokenStoreOptions(str(source), str(killed), workers=2))
    assert result["workers"] == 2
    assert store_files(killed) == store_files(whole)


def test_a_finished_store_is_kept_and_a_different_one_is_refused(lego_dataset, lego_store, tmp_path):
    before = store_files(lego_store)
    prepare_in_process(TokenStoreOptions(str(lego_dataset), str(lego_store), sequence_length=28))
    assert store_files(lego_store) == before
    with pytest.raises(ValueError, match=r"made with other options.*sequence_length.*--overwrite"):
        prepare_in_process(TokenStoreOptions(str(lego_dataset), str(lego_store), sequence_length=32))
    assert store_files(lego_store) == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="files that are not a token store"):
        prepare_in_process(TokenStoreOptions(str(lego_dataset), str(other)))
    assert (other / "notes.txt").read_text() == "mine"


def test_packed_text_rows_hold_every_document_and_an_eos_after_each(tmp_path):
    source = many_part_directory(tmp_path / "input", skills=2, parts=2)
    store = tmp_path / "store"
    manifest = prepare_in_process(TokenStoreOptions(str(source), str(store), sequence_length=16))
    assert manifest["packed"] and manifest["dtype"] == "uint16" and manifest["sequence_length"] == 16
    tokenizer = load_skill_tokenizer(resolve_skills(store_config(tmp_path, store)))
    texts = pq.read_table(source / "train" / "skill_1" / "part-00001.parquet").column("text").to_pylist()
    expected = [token for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]
                for token in [*ids, tokenizer.eos_token_id]]  # fmt: skip
    rows = np.fromfile(store / "train" / "skill_1" / "shard-00001.tokens", dtype="<u2").reshape(-1, 16)
    flat = rows.reshape(-1)
    assert flat[: len(expected)].tolist() == expected and set(flat[len(expected) :]) <= {tokenizer.pad_token_id}
    assert manifest["splits"]["train"]["skill_1"]["tokens"] == sum(
        int((np.fromfile(path, dtype="<u2") != tokenizer.pad_token_id).sum())
        for path in (store / "train" / "skill_1").glob("*.tokens")
    )


@pytest.mark.parametrize(
    ("damage", "overrides", "message"),
    [
        ("none", ("data.sequence_length=32",), r"holds rows of 28 tokens; set data.sequence_length=28"),
        ("none", ("data.pack_sequences=true",), r"prepared with packed=false"),
        ("none", ("model.overrides={vocab_size: 20}",), r"vocab_size=20 but the tokenizer has"),
        ("none", ("model.overrides={n_positions: 16}",), r"more than the model's 16 positions"),
        ("tokenizer", (), r"made by another tokenizer.*tokenizer hash"),
        ("truncate", (), r"shard-00002.tokens has 1000 bytes, the manifest says 2240 .*truncated"),
        ("token_id", (), r"holds token id 65535, outside the tokenizer's 39 ids"),
        ("missing_skill", (), r"no val data for skill 'lego_2'"),
        ("version", (), r"format version 99; this skillit-ray reads version 1"),
        ("manifest", (), r"has no manifest.json: it is not a finished token store"),
    ],
)
def test_bad_stores_are_refused_before_ray_naming_the_file_and_fix(lego_store, tmp_path, damage, overrides, message):
    import shutil

    store = tmp_path / "store"
    shutil.copytree(lego_store, store)
    manifest_path = store / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    if damage == "tokenizer":
        tokenizer = train_bpe_tokenizer(["another tokenizer, another vocabulary"] * 20, 300)
        tokenizer.save_pretrained(tmp_path / "other_tokenizer")
        overrides = (f"data.tokenizer_path={tmp_path / 'other_tokenizer'}",)
    elif damage == "truncate":
        shard = store / "train" / "lego_2" / "shard-00002.tokens"
        shard.write_bytes(shard.read_bytes()[:1000])
    elif damage == "token_id":
        shard = store / "train" / "lego_3" / "shard-00000.tokens"
        payload = bytearray(shard.read_bytes())
        payload[4:6] = b"\xff\xff"
        shard.write_bytes(bytes(payload))
    elif damage == "missing_skill":
        del manifest["splits"]["val"]["lego_2"]
    elif damage == "version":
        manifest["format_version"] = 99
    if damage == "manifest":
        manifest_path.unlink()
    else:
        manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=message):
        resolve_run(store_config(tmp_path, store, *overrides))


def test_store_on_object_storage_trains_like_the_local_store(lego_dataset, lego_store, tmp_path, monkeypatch):
    """prepare -> s3:// (moto's S3 server on 127.0.0.1) -> a run that reads shards in ranges: the same run."""
    from skillit_ray.train.local import run_local_training

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        environment = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1", "SKILLIT_RAY_CACHE": str(tmp_path / "cache")}  # fmt: skip
        for key, value in environment.items():
            monkeypatch.setenv(key, value)
        uri = f"s3://bucket/lego?endpoint_override=127.0.0.1:{port}&scheme=http"
        filesystem, root = wait_for_bucket(uri)
        prepare_in_process(TokenStoreOptions(str(lego_dataset), uri, sequence_length=28))
        local = store_files(lego_store)
        remote = {}
        for path in file_sizes(filesystem, root):
            with filesystem.open_input_stream(path) as stream:
                remote[path[len(root) + 1 :]] = stream.read()
        assert remote.keys() == local.keys()
        assert remote == local  # the same bytes on object storage as on local disk
        got = run_local_training(store_config(tmp_path, uri, "run.name=remote"))["rounds"]
        expected = run_local_training(store_config(tmp_path, lego_store, "run.name=local"))["rounds"]
        assert [r["achieved_counts"] for r in got] == [r["achieved_counts"] for r in expected]
        np.testing.assert_allclose([r["val_loss"] for r in got], [r["val_loss"] for r in expected], rtol=1e-6)
        filesystem.delete_file(f"{root}/train/lego_1/shard-00003.tokens")
        with pytest.raises(ValueError, match="shard-00003.tokens has 0 bytes"):
            resolve_run(store_config(tmp_path, uri))
    finally:
        server.terminate()
        server.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_bucket(uri: str):
    """The S3 filesystem of a moto server that is starting, with the bucket made."""
    deadline, error = time.monotonic() + 60, None
    while time.monotonic() < deadline:
        try:
            maker, root = storage_filesystem(f"{uri}&allow_bucket_creation=true")
            maker.create_dir(root.split("/")[0])
            return storage_filesystem(uri)
        except OSError as failure:
            error = failure
            time.sleep(0.1)
    raise RuntimeError(f"moto's S3 server did not answer: {error}")


def many_part_directory(root: Path, skills: int, parts: int) -> Path:
    """A prepared text directory with `parts` small part files per skill (and one validation part)."""
    rng = np.random.default_rng(0)
    words = "the data of each skill is tokenized once and read by index at every step".split()
    texts = [" ".join(rng.choice(words, size=int(rng.integers(3, 12)))) for _ in range(400)]
    names = [f"skill_{index}" for index in range(skills)]
    for skill in names:
        for split, count in (("train", parts), ("val", 1)):
            (root / split / skill).mkdir(parents=True)
            for part in range(count):
                chosen = [texts[int(i)] for i in rng.integers(0, len(texts), size=4)]
                pq.write_table(pa.table({"text": chosen}), root / split / skill / f"part-{part:05d}.parquet")
    tokenizer = train_bpe_tokenizer(texts, 300)
    tokenizer.save_pretrained(root / "tokenizer")
    (root / "manifest.json").write_text(json.dumps({"skills": names, "source": "table", "text_column": "text"}))
    return root


def test_the_sample_curriculum_scores_and_trains_stored_rows(lego_store, tmp_path):
    """The curriculum's pool from a store holds token rows: scored by their loss, trained as they are."""
    from skillit_ray.train.local import run_local_training

    config = store_config(tmp_path, lego_store, "mixture.strategy=curriculum", "mixture.proportions=[1, 1, 3]",
                          "mixture.curriculum.num_epochs=2")  # fmt: skip
    rounds = run_local_training(config)["rounds"]
    assert sum(sum(record["achieved_counts"]) for record in rounds) == 12 * 8
    assert [record["weights"] for record in rounds] == [[0.2, 0.2, 0.6]] * 3


def test_prepare_tokens_without_input_exits_with_the_fix(tmp_path, capsys):
    from skillit_ray.cli import main

    assert main(["prepare", "tokens", "--out", str(tmp_path / "store")]) == 2
    assert "prepare tokens needs --input DIR" in capsys.readouterr().err


def test_a_split_stream_takes_exact_counts_over_the_passes_of_the_store(ray_local, lego_store, tmp_path):
    from skillit_ray.data.ray_datasets import SplitStream, store_skill_dataset

    config, setup = resolve_run(store_config(tmp_path, lego_store))
    every_row = {bytes(row) for shard in sorted((lego_store / "train" / "lego_2").glob("*.tokens"))
                 for row in np.fromfile(shard, dtype="<u2").reshape(-1, 28).astype(np.int32)}  # fmt: skip
    iterator = store_skill_dataset(str(lego_store), setup.data_index, "lego_2", seed=0, epochs=2).streaming_split(1)[0]
    stream = SplitStream(iterator, "lego_2", 28, seed=0, shuffle_rows=1)
    taken = [stream.take(count, 0) for count in (70, 130, 1, 199)]  # 200 rows a pass, shards in seeded order
    assert [len(rows) for rows in taken] == [70, 130, 1, 199] and taken[0].dtype == np.int32
    counts = Counter(bytes(row) for row in np.concatenate(taken))  # blocks arrive in no fixed order
    assert set(counts) == every_row and set(counts.values()) == {2}  # both passes, every row twice
    with pytest.raises(ValueError, match="streaming split ran out of rows"):
        stream.take(1, 0)


@pytest.mark.parametrize("source", ["tokens", pytest.param("parquet", marks=pytest.mark.slow)])
def test_streaming_split_training_on_two_workers_trains_exact_quotas(ray_local, lego_dataset, lego_store, tmp_path,
                                                                      source):  # fmt: skip
    """Per-skill datasets handed to Ray Train, one streaming_split each: every step's counts are exact."""
    from skillit_ray.train.launch import run_training

    reader = {
        "tokens": (f"data.tokens.path={lego_store}", "data.tokens.reader=streaming_split", "data.sequence_length=0"),
        "parquet": (f"data.parquet.path={lego_dataset}", "data.parquet.reader=streaming_split"),
    }[source]
    config = small_config(tmp_path, f"data.source={source}", *reader, "scaling.num_workers=2", f"run.name={source}")
    run_training(config)
    rounds = [json.loads(line) for line in (tmp_path / source / "mixture.jsonl").read_text().splitlines()]
    assert len(rounds) == 3
    for record in rounds:
        start, end = config.train.steps_in_round(record["round"], config.mixture.num_rounds)
        assert record["achieved_counts"] == round_quotas(record["weights"], (end - start) * 8).tolist()
