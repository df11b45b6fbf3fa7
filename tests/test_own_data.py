"""Bring your own data: a table with a skill column prepared (or read as is), a tokenizer trained and
checked before Ray starts, the real-data settings end to end, and clear errors for bad input.

Tables are made here: Natural-Instructions style (skills = categories, tasks inside, prompt/answer)
and RedPajama style (skills = sources, plain text). Runs are in-process (`run_local_training`).
Run: `.venv/bin/python -m pytest tests/test_own_data.py`.
"""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import small_config

from skillit_ray.cli import main
from skillit_ray.config.job import load_config
from skillit_ray.data.assembly import BatchAssembler
from skillit_ray.data.prepare.table import TableOptions, prepare_table
from skillit_ray.data.sources.registry import load_skill_tokenizer, load_validation_sets
from skillit_ray.mixture.quotas import split_quotas_across_ranks
from skillit_ray.train.local import run_local_training
from skillit_ray.train.resolve import resolve_run
from skillit_ray.tune.graph_runs import learn_graph, run_short_runs_sequentially

WORDS = {
    "code": "def return import class self yield lambda none true false",
    "legal": "hereby whereas party shall agreement license warranty clause",
    "prose": "the cat sat on a mat and looked at the sky",
}
RUN = ["train.steps=6", "train.batch_size=6", "train.eval_every_n_steps=3", "mixture.num_rounds=2",
       "data.num_val_per_skill=4", "train.warmup_steps=1"]  # fmt: skip


def ni_rows(num_per_task: int = 12) -> list[dict[str, str]]:
    """Natural-Instructions style: 3 categories x 2 tasks, prompt/answer with multi-token answers."""
    generator = random.Random(0)
    rows = []
    for category, words in WORDS.items():
        vocabulary = words.split()
        for task in range(2):
            for _ in range(num_per_task + 4 * task):
                prompt = f"{category} task {task}: " + " ".join(generator.choices(vocabulary, k=6)) + " =>"
                rows.append({"category": category, "task": f"{category}_{task}", "prompt": prompt,
                             "answer": " " + " ".join(generator.choices(vocabulary, k=3))})  # fmt: skip
    generator.shuffle(rows)
    return rows


def text_rows(num_per_source: int = 40) -> list[dict[str, str]]:
    """RedPajama style: skills = sources, documents of varying length."""
    generator = random.Random(1)
    return [
        {"source": source, "text": " ".join(generator.choices(words.split(), k=generator.randint(5, 60)))}
        for source, words in WORDS.items()
        for _ in range(num_per_source)
    ]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def prepared_ni(tmp_path, **overrides):
    options = TableOptions(
        input=str(write_jsonl(tmp_path / "ni.jsonl", ni_rows())), out=str(tmp_path / "ni"), skill_column="category",
        prompt_column="prompt", answer_column="answer", task_column="task", val_rows=4, tokenizer_vocab_size=320,
        rows_per_part=8,
    )  # fmt: skip
    for key, value in overrides.items():
        setattr(options, key, value)
    prepare_table(options)
    return tmp_path / "ni"


def test_prepare_table_splits_balances_tasks_and_trains_a_tokenizer(tmp_path):
    directory = prepared_ni(tmp_path)
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["skills"] == ["code", "legal", "prose"]
    for skill in manifest["skills"]:  # 12 + 16 rows per category, 4 held out
        assert manifest["rows"][skill]["train_rows"] == 24 and manifest["rows"][skill]["val_rows"] == 4
        assert manifest["rows"][skill]["train_tokens"] > 0
    tasks = pq.read_table(sorted((directory / "train" / "code").glob("*.parquet"))[0]).column("task").to_pylist()
    assert tasks[:4] in (["code_0", "code_1"] * 2, ["code_1", "code_0"] * 2)  # round-robin over tasks
    tokenizer = load_skill_tokenizer(
        resolve_run(load_config(None, ["data.source=parquet", f"data.parquet.path={directory}", *RUN]))[1]
    )
    assert tokenizer.pad_token == "<pad>" and tokenizer.eos_token == "<eos>" and len(tokenizer) == 320
    (tmp_path / "again").mkdir()
    again = prepared_ni(tmp_path / "again")
    for part in sorted(directory.glob("*/*/*.parquet")):
        assert pq.read_table(part).equals(pq.read_table(again / part.relative_to(directory)))  # deterministic


def test_tiny_skills_are_merged_or_dropped_and_logged(tmp_path):
    rows = text_rows() + [{"source": "rare", "text": "one two"}] * 3
    table = write_jsonl(tmp_path / "t.jsonl", rows)
    base = dict(input=str(table), skill_column="source", val_rows=2, tokenizer_vocab_size=300, min_skill_rows=10)
    merged = json.loads(prepare_table(TableOptions(out=str(tmp_path / "m"), tiny_skills="merge", **base)).read_text())
    dropped = json.loads(prepare_table(TableOptions(out=str(tmp_path / "d"), **base)).read_text())
    assert "other" in merged["skills"] and "rare" not in merged["skills"]
    assert "other" not in dropped["skills"] and "rare" not in dropped["skills"]
    assert "merged into 'other'" in merged["decisions"][0] and "dropped" in dropped["decisions"][0]


def test_every_table_format_gives_the_same_dataset(tmp_path):
    import datasets

    table = pa.Table.from_pylist(text_rows())
    (tmp_path / "parts").mkdir()
    pq.write_table(table.slice(0, 60), tmp_path / "parts" / "a.parquet")
    pq.write_table(table.slice(60), tmp_path / "parts" / "b.parquet")
    table.to_pandas().to_csv(tmp_path / "t.csv", index=False)
    datasets.Dataset(table).save_to_disk(str(tmp_path / "hf"))
    inputs = {"glob": str(tmp_path / "parts" / "*.parquet"), "csv": str(tmp_path / "t.csv"), "hf": str(tmp_path / "hf")}
    manifests = {}
    for name, path in inputs.items():
        options = TableOptions(input=path, out=str(tmp_path / f"out_{name}"), skill_column="source",
                               val_fraction=0.1, tokenizer_vocab_size=300)  # fmt: skip
        manifests[name] = json.loads(prepare_table(options).read_text())
    assert manifests["glob"]["rows"] == manifests["csv"]["rows"] == manifests["hf"]["rows"]
    assert manifests["hf"]["rows"]["code"]["val_rows"] == 4


def test_a_table_trains_as_is_with_text_defaults_and_worker_count_independent_rows(tmp_path):
    table = write_jsonl(tmp_path / "t.jsonl", text_rows())
    prepare_table(TableOptions(input=str(table), out=str(tmp_path / "p"), skill_column="source", val_rows=4,
                               tokenizer_vocab_size=300))  # fmt: skip
    tokenizer_path = tmp_path / "p" / "tokenizer"
    overrides = ["data.source=table", f"data.table.path={table}", "data.table.skill_column=source",
                 f"data.tokenizer_path={tokenizer_path}", "mixture.strategy=stratified", *RUN]  # fmt: skip
    config, setup = resolve_run(load_config(None, overrides))
    assert config.data.pack_sequences is True and 64 <= config.data.sequence_length <= 512
    tokenizer = load_skill_tokenizer(setup)
    schedule = np.repeat(np.arange(3), 4)
    rows_by_world = {}
    for world_size in (1, 2):
        assemblers = [BatchAssembler(config, setup, tokenizer, rank, world_size) for rank in range(world_size)]
        counts = split_quotas_across_ranks(schedule, 3, world_size)
        rows_by_world[world_size] = sorted(map(tuple, np.concatenate(
            [assembler.next_batch(counts, 0)[0] for assembler in assemblers]).tolist()))  # fmt: skip
    assert rows_by_world[1] == rows_by_world[2]
    records = run_local_training(load_config(None, overrides))
    assert [sum(record["achieved_counts"]) for record in records["rounds"]] == [18, 18]


def test_natural_instructions_style_settings_end_to_end(tmp_path):
    directory = prepared_ni(tmp_path)
    pretraining = ["data.source=parquet", f"data.parquet.path={directory}", "mixture.strategy=stratified", *RUN]
    config, setup = resolve_run(load_config(None, pretraining))
    validation = load_validation_sets(config, setup, load_skill_tokenizer(setup))
    assert all(v.loss_mask is not None and v.loss_mask.any() for v in validation)  # answer tokens scored
    assert len(run_local_training(load_config(None, pretraining))["evaluations"][-1]["val_loss"]) == 3
    out_of_domain = ["data.source=parquet", f"data.parquet.path={directory}", "mixture.setting=out_of_domain",
                     "data.train_skills=[code, legal]", "data.eval_skills=[prose]", "graph.steps=3", *RUN]  # fmt: skip
    measured = run_short_runs_sequentially(load_config(None, [*out_of_domain, "mixture.graph=[[1], [1]]"]))
    assert sorted(measured["measurements"]) == ["only_code", "only_legal"]
    records = run_local_training(load_config(None, [*out_of_domain, "mixture.graph=[[0.5], [0.2]]"]))
    assert len(records["rounds"][0]["weights"]) == 2 and len(records["evaluations"][0]["val_loss"]) == 1
    finetuning = ["data.source=parquet", f"data.parquet.path={directory}", "mixture.setting=finetuning",
                  "mixture.target_skills=[prose]", "mixture.graph=[[1, 0.5, 0.2], [0, 1, 0], [0.3, 0, 1]]",
                  *RUN]  # fmt: skip
    records = run_local_training(load_config(None, finetuning))
    assert len(records["evaluations"][-1]["val_loss"]) == 1 and len(records["rounds"][-1]["weights"]) == 3


def test_compare_prints_the_table_and_writes_the_plot(tmp_path, capsys):
    from test_report import write_run

    runs = [write_run(tmp_path / name, name, None, [1.0, 2.0]) for name in ("stratified", "skillit")]
    assert main(["compare", *map(str, runs), "--plot", str(tmp_path / "c.png")]) == 0
    output = capsys.readouterr().out
    assert "validation loss per evaluation skill" in output and "skillit" in output
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_tune_trials_cannot_deadlock_on_ray_data_reads(ray_local, lego_dataset, tmp_path):

    # two trials of 2 CPUs fill the 4-CPU local Ray; a Ray Data read in a trial would wait forever
    config = small_config(
        tmp_path,
        "data.source=parquet",
        f"data.parquet.path={lego_dataset}",
        "data.parquet.reader=ray_data",
        "graph.steps=2",
        "graph.cpus_per_trial=2",
    )
    assert learn_graph(config)["num_runs"] == 3


# ----------------------------------------------------------------------------- bad input, before Ray


def test_bad_tables_are_refused_with_file_column_and_fix(tmp_path):
    rows = text_rows()
    base = dict(val_rows=2, tokenizer_vocab_size=300)
    with pytest.raises(ValueError, match=r"no skill column 'category'.*\['source', 'text'\]"):
        prepare_table(TableOptions(input=str(write_jsonl(tmp_path / "a.jsonl", rows)), out=str(tmp_path / "a"),
                                   skill_column="category", **base))  # fmt: skip
    missing = rows[:5] + [{"source": None, "text": "x"}] + rows[5:]
    with pytest.raises(ValueError, match="row 5 has no value in skill column 'source'"):
        prepare_table(TableOptions(input=str(write_jsonl(tmp_path / "b.jsonl", missing)), out=str(tmp_path / "b"),
                                   skill_column="source", **base))  # fmt: skip
    numbers = [{"source": row["source"], "text": index} for index, row in enumerate(rows)]
    with pytest.raises(ValueError, match="column 'text' holds int64, not text"):
        prepare_table(TableOptions(input=str(write_jsonl(tmp_path / "c.jsonl", numbers)), out=str(tmp_path / "c"),
                                   skill_column="source", **base))  # fmt: skip
    few = rows + [{"source": "rare", "text": "a b"}] * 2
    with pytest.raises(ValueError, match="skill 'rare' has 2 rows: holding out 2 .* leaves none"):
        prepare_table(TableOptions(input=str(write_jsonl(tmp_path / "d.jsonl", few)), out=str(tmp_path / "d"),
                                   skill_column="source", **base))  # fmt: skip


def test_a_manifest_that_is_not_a_mapping_is_refused(lego_dataset, tmp_path):
    directory = tmp_path / "copy"
    shutil.copytree(lego_dataset, directory)
    (directory / "manifest.json").write_text('["lego_1", "lego_2"]')
    with pytest.raises(ValueError, match="holds a list, not a mapping"):
        resolve_run(small_config(tmp_path, "data.source=parquet", f"data.parquet.path={directory}"))


def test_bad_tokenizers_are_refused_before_ray(lego_dataset, tmp_path):
    directory = prepared_ni(tmp_path)
    file_path = directory / "tokenizer" / "tokenizer.json"
    with pytest.raises(ValueError, match="is a file, not a directory"):
        resolve_run(
            load_config(
                None,
                ["data.source=parquet", f"data.parquet.path={directory}", f"data.tokenizer_path={file_path}", *RUN],
            )
        )
    no_pad = tmp_path / "no_pad"
    shutil.copytree(directory / "tokenizer", no_pad)
    settings = json.loads((no_pad / "tokenizer_config.json").read_text())
    settings.pop("pad_token", None)
    (no_pad / "tokenizer_config.json").write_text(json.dumps(settings))
    special = (
        json.loads((no_pad / "special_tokens_map.json").read_text())
        if (no_pad / "special_tokens_map.json").is_file()
        else {}
    )
    special.pop("pad_token", None)
    (no_pad / "special_tokens_map.json").write_text(json.dumps(special))
    with pytest.raises(ValueError, match="has no pad token"):
        resolve_run(
            load_config(
                None, ["data.source=parquet", f"data.parquet.path={directory}", f"data.tokenizer_path={no_pad}", *RUN]
            )
        )
    lego_tokenizer = lego_dataset / "tokenizer"
    with pytest.raises(ValueError, match=r"maps \d+\.\d% of skill 'code'"):
        resolve_run(
            load_config(
                None,
                [
                    "data.source=parquet",
                    f"data.parquet.path={directory}",
                    f"data.tokenizer_path={lego_tokenizer}",
                    *RUN,
                ],
            )
        )
    with pytest.raises(ValueError, match="vocab_size=100 but the tokenizer has 320 tokens"):
        resolve_run(
            load_config(
                None,
                ["data.source=parquet", f"data.parquet.path={directory}", "model.overrides={vocab_size: 100}", *RUN],
            )
        )


def test_a_sequence_length_that_cuts_synthetic_samples_is_refused_before_ray():
    from skillit_ray.config.job import load_config
    from skillit_ray.train.resolve import resolve_run

    resolved, _ = resolve_run(load_config(None, ["data.lego.num_variables=5"]))
    longest = resolved.data.sequence_length  # auto: the longest sampled row, rounded up to a multiple of 8
    with pytest.raises(ValueError, match=r"data.sequence_length=24 is shorter than the longest sampled lego sample"):
        resolve_run(load_config(None, ["data.lego.num_variables=5", "data.sequence_length=24"]))
    assert resolve_run(load_config(None, ["data.lego.num_variables=5", f"data.sequence_length={longest}"]))
