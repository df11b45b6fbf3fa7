"""`python -m skillit_ray.benchmarks data-path`: tokens/s the per-skill streams deliver to a training worker.

Role in the flow: a benchmark beside the product (not a test). On real BPE-tokenized text (the
efficiency benchmark's corpus, `corpus.py` + `prepare table`, its documents dealt round-robin to
10, 100 or 1,000 skills), it times `data.BatchAssembler` (the worker's per-skill streams, exact
quotas, packing, shuffling: what a training step waits for without prefetch) for each way of reading,
skill count and skew (skill 0 weighted 1, 10 or 1,000 times the others), next to the limit: a plain
loop that reads the same files with pyarrow and packs them with the same tokenizer and function, on
the same cores. The readers:

* `store`: the token store (`data.source: tokens`), prepared once per skill count; rows by index;
* `store_split`: the same shards as one Ray Data dataset per skill, read through `streaming_split`
  (the way Ray Train hands datasets to workers; no tokenization in the stream);
* `text_split`: `read_parquet -> map_batches(tokenize)` per skill through `streaming_split` (on the fly);
* `arrow`, `ray_data`: the parquet source's readers (pyarrow in the worker; a Ray Data pipeline per
  skill per worker), tokenizing at every step.

It also times the prepare itself: the Ray Data job (an actor per CPU) against one process running the
same shard function, on the same input. From the best reader it derives the CPU cores per GPU that
GPT-2 124M at 307k tokens/s (one H100, measured; reference/ray-notes.md) would need.

Ray Data readers are run at 10 skills only: one Ray Data pipeline (or split) per skill spends the
machine on start-up at 100 and more (200 skills did not finish 30 steps in 15 minutes, `benchmark
many-skills`), which is why `data.parquet.reader=auto` reads with pyarrow above `RAY_DATA_MAX_SKILLS`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from skillit_ray.benchmarks.efficiency_settings import text_directory
from skillit_ray.benchmarks.registry import Benchmark
from skillit_ray.data.prepare.tokens import TokenStoreOptions, prepare_in_process
from skillit_ray.data.storage import write_file

H100_GPT2_TOKENS_PER_S = 307_000
"""GPT-2 124M, batch 16 x 1024, bf16, torch.compile, one H100 (reference/ray-notes.md)."""
SKILL_COUNTS = (10, 100, 1_000)
SKEWS = (1, 10, 1_000)
SEQUENCE_LENGTH = 128
BATCH_ROWS = 64


def split_corpus(prepared: Path, num_skills: int, out: Path) -> Path:
    """The prepared corpus's training documents dealt round-robin to `num_skills` skills, as parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [text for part in sorted(prepared.glob("train/*/*.parquet"))
             for text in pq.read_table(part, columns=["text"]).column("text").to_pylist()]  # fmt: skip
    skills = [f"skill_{index:04d}" for index in range(num_skills)]
    for index, skill in enumerate(skills):
        documents = texts[index::num_skills]
        for split, rows in (("train", documents), ("val", documents[:1])):
            (out / split / skill).mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table({"text": rows}), out / split / skill / "part-00000.parquet")
    (out / "manifest.json").write_text(json.dumps({"skills": skills}))
    shutil.copytree(prepared / "tokenizer", out / "tokenizer")
    return out


RAY_DATA_READERS = ("store_split", "text_split", "ray_data")
READERS = ("store", "store_split", "arrow", "text_split", "ray_data")


def _config(dataset: Path, reader: str, store: Path | None = None):
    from skillit_ray.config.job import load_config

    split = "streaming_split" if reader.endswith("_split") else None
    source = ["data.source=tokens", f"data.tokens.path={store}", f"data.tokens.reader={split or 'index'}"] if (
        reader.startswith("store")) else [
        "data.source=parquet", f"data.parquet.path={dataset}", f"data.parquet.reader={split or reader}",
    ]  # fmt: skip
    return load_config(None, [
        *source, f"data.sequence_length={SEQUENCE_LENGTH}", "data.pack_sequences=true", "data.num_val_per_skill=1",
        f"train.batch_size={BATCH_ROWS}", "mixture.strategy=stratified", "model.size=tiny",
    ])  # fmt: skip


def split_iterators(config, setup, tokenizer) -> dict:
    """This worker's `streaming_split` of each skill's Ray Data dataset (one worker: split 0 of 1), built by
    the source as a training run builds them (`SkillSource.ray_dataset`)."""
    from skillit_ray.data.sources.registry import source_for

    source = source_for(setup)
    return {skill: source.ray_dataset(skill, tokenizer, config).streaming_split(1)[0] for skill in setup.train_skills}


def stream_tokens_per_s(dataset: Path, reader: str, skew: float, steps: int, store: Path | None = None) -> dict:
    """Tokens/s of `BatchAssembler.next_batch` over `steps` steps, one worker (rank 0 of 1), split into
    start-up (opening every skill's stream: the first step) and steady state (the other steps, which go
    through the data more than once, so epoch restarts are counted). Every read is inside one of the
    two clocks."""
    from skillit_ray.data.assembly import BatchAssembler
    from skillit_ray.data.sources.registry import load_skill_tokenizer, resolve_skills
    from skillit_ray.mixture.quotas import round_quotas, round_skill_schedule, split_quotas_across_ranks

    config = _config(dataset, reader, store)
    config.train.steps = steps
    setup = resolve_skills(config)
    tokenizer = load_skill_tokenizer(setup)
    num_skills = len(setup.train_skills)
    weights = np.ones(num_skills)
    weights[0] = skew
    schedule = round_skill_schedule(round_quotas(weights / weights.sum(), steps * BATCH_ROWS), 0, 0)
    tokens, started = 0, time.perf_counter()
    splits = split_iterators(config, setup, tokenizer) if reader.endswith("_split") else None
    assembler = BatchAssembler(config, setup, tokenizer, 0, 1, splits=splits)
    first_step_s = 0.0
    for step in range(steps):
        counts = split_quotas_across_ranks(schedule[step * BATCH_ROWS :][:BATCH_ROWS], num_skills, 1)
        rows, _ = assembler.next_batch(counts, step)
        if step == 0:
            first_step_s = time.perf_counter() - started
        else:
            tokens += int((rows != tokenizer.pad_token_id).sum())
    steady_s = time.perf_counter() - started - first_step_s
    assembler.close()
    return {
        "tokens_per_s": round(tokens / steady_s, 1) if steps > 1 else None,
        "first_step_s": round(first_step_s, 2),
        "steady_s": round(steady_s, 2),
        "tokens": tokens,
    }


PREPARE_COPIES = {10: 32, 1_000: 1}
"""Skill count -> how many times every part file is written for the timed prepare. At 10 skills, 32 times
(76M tokens, a minute of one core): the Ray Data job starts in about 5 s (actors importing the tokenizer,
the executor), which a small input would measure instead of tokenizing. At 1,000 skills, once: 2,000
small parts, the per-shard cost."""


def prepare_tokens_per_s(dataset: Path, out: Path, copies: int) -> dict:
    """The token store of `dataset` (each part `copies` times) made three ways: one process on one core
    (`TOKENIZERS_PARALLELISM=false`), one process with the tokenizer's own threads, and the Ray Data job (an
    actor per CPU, Ray already up); tokens/s of each (the stores must be equal) and the speed-up."""
    from skillit_ray.data.tokenize_job import run_prepare_tokens

    source = out / "input"
    shutil.copytree(dataset, source)
    for part in sorted(source.glob("train/*/*.parquet")):
        for copy in range(1, copies):
            shutil.copy(part, part.with_name(f"{part.stem}-copy{copy}.parquet"))
    options = {"sequence_length": SEQUENCE_LENGTH, "pack": True}
    seconds = {}
    for name, parallelism in (("one_core", "false"), ("tokenizer_threads", "true")):
        previous = dict(os.environ)
        os.environ["TOKENIZERS_PARALLELISM"] = parallelism
        try:
            started = time.perf_counter()
            single = prepare_in_process(TokenStoreOptions(str(source), str(out / name), **options))
            seconds[name] = time.perf_counter() - started
        finally:
            os.environ.clear()
            os.environ.update(previous)
    job = run_prepare_tokens(TokenStoreOptions(str(source), str(out / "ray_data"), **options))
    if job["manifest"] != single:
        raise RuntimeError("the Ray Data prepare wrote another store than the one-process prepare")
    tokens = sum(entry["tokens"] for split in single["splits"].values() for entry in split.values())
    return {
        "prepare_tokens": tokens,
        "prepare_one_process_tokens_per_s": round(tokens / seconds["one_core"], 1),
        "prepare_one_process_threads_tokens_per_s": round(tokens / seconds["tokenizer_threads"], 1),
        "prepare_ray_data_tokens_per_s": round(tokens / job["seconds"], 1),
        "prepare_ray_data_actors": job["workers"],
        "prepare_speedup": round(seconds["one_core"] / job["seconds"], 2),
    }


def plain_tokens_per_s(dataset: Path) -> dict:
    """The limit: pyarrow reads the same files once and the same packing function tokenizes them."""
    import pyarrow.parquet as pq

    from skillit_ray.data.sources.registry import load_skill_tokenizer, resolve_skills
    from skillit_ray.data.tokens import encode_texts

    tokenizer = load_skill_tokenizer(resolve_skills(_config(dataset, "arrow")))
    tokens, started = 0, time.perf_counter()
    for part in sorted(dataset.glob("train/*/*.parquet")):
        texts = pq.read_table(part, columns=["text"]).column("text").to_pylist()
        rows = encode_texts(tokenizer, texts, SEQUENCE_LENGTH, pack=True)
        tokens += int((rows != tokenizer.pad_token_id).sum())
    seconds = time.perf_counter() - started
    return {"tokens_per_s": round(tokens / seconds, 1), "seconds": round(seconds, 2), "tokens": tokens}


def data_path_benchmark(
    prepared: str,
    skill_counts=SKILL_COUNTS,
    skews=SKEWS,
    epochs: float = 2.0,
    readers=READERS,
    prepare_copies: dict[int, int] | None = None,
) -> dict[str, Any]:
    """Every (reader, skills, skew) next to the plain loop, the prepare per skill count; cores per GPU from
    the best figure. Each measurement runs the steps that take `epochs` times the corpus's token rows."""
    import ray

    from skillit_ray.train.launch import LEAN_LOCAL_RAY

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=os.cpu_count() or 2, logging_level="ERROR", **LEAN_LOCAL_RAY)
    ray.data.DataContext.get_current().enable_progress_bars = False
    work = Path(tempfile.mkdtemp(prefix="skillit-data-path-"))
    rows, prepares = [], []
    try:
        for num_skills in skill_counts:
            dataset = split_corpus(Path(prepared), num_skills, work / f"skills-{num_skills}")
            plain = plain_tokens_per_s(dataset)
            copies = (PREPARE_COPIES if prepare_copies is None else prepare_copies).get(num_skills)
            if copies:
                prepare = prepare_tokens_per_s(dataset, work / f"stores-{num_skills}", copies)
                prepares.append({"skills": num_skills, "copies": copies, **prepare})
                print(json.dumps(prepares[-1]), flush=True)
            store = work / f"stores-{num_skills}" / "store"
            prepare_in_process(TokenStoreOptions(str(dataset), str(store), sequence_length=SEQUENCE_LENGTH, pack=True))
            steps = max(2, round(epochs * plain["tokens"] / (BATCH_ROWS * SEQUENCE_LENGTH)))
            for reader in readers:
                for skew in skews:
                    row = {"skills": num_skills, "reader": reader, "skew": f"{skew}:1",
                           "plain_tokens_per_s": plain["tokens_per_s"]}  # fmt: skip
                    if reader in RAY_DATA_READERS and num_skills > 10:
                        row["tokens_per_s"] = None
                        row["note"] = "not run: one Ray Data pipeline per skill"
                    else:
                        row.update(stream_tokens_per_s(dataset, reader, skew, steps, store), steps=steps)
                        row["fraction_of_plain"] = round(row["tokens_per_s"] / plain["tokens_per_s"], 3)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if started_here:
            ray.shutdown()
    measured = [row["tokens_per_s"] for row in rows if row.get("tokens_per_s")] or [float("nan")]
    cores = os.cpu_count() or 1
    per_core = max(measured) / cores
    return {
        "benchmark": "data-path",
        "cpu_count": cores,
        "sequence_length": SEQUENCE_LENGTH,
        "batch_rows": BATCH_ROWS,
        "rows": rows,
        "prepare": prepares,
        "best_tokens_per_s_per_core": round(per_core, 1),
        "cores_per_gpu_for_gpt2_124m_h100": round(H100_GPT2_TOKENS_PER_S / per_core, 1),
        "worst_case_cores_per_gpu": round(H100_GPT2_TOKENS_PER_S / (min(measured) / cores), 1),
    }


def markdown(result: dict[str, Any]) -> str:
    """The figures as markdown tables."""
    lines = [
        "| skills | reader | skew | first step s (opening the streams) | steady streams tokens/s "
        "| plain read + tokenize tokens/s | fraction of plain |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        streamed = f"{row['tokens_per_s']:,.0f}" if row.get("tokens_per_s") else row.get("note", "")
        fraction = row.get("fraction_of_plain", "")
        first = row.get("first_step_s", "")
        lines.append(f"| {row['skills']} | {row['reader']} | {row['skew']} | {first} | {streamed} | "
                     f"{row['plain_tokens_per_s']:,.0f} | {fraction} |")  # fmt: skip
    lines += ["", "Prepare (`skillit-ray prepare tokens`; the input's parts written `copies` times), the same store "
              "every way:", "",
              "| skills | copies | tokens | one process, one core, tokens/s | one process, tokenizer threads | "
              "Ray Data job tokens/s (actors) | speed-up over one core |",
              "|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for row in result.get("prepare", []):
        single, job = row["prepare_one_process_tokens_per_s"], row["prepare_ray_data_tokens_per_s"]
        threads = row["prepare_one_process_threads_tokens_per_s"]
        lines.append(f"| {row['skills']} | {row['copies']} | {row['prepare_tokens']:,} | {single:,.0f} | "
                     f"{threads:,.0f} | "
                     f"{job:,.0f} ({row['prepare_ray_data_actors']}) | "
                     f"{row['prepare_speedup']} |")  # fmt: skip
    lines.append("")
    lines.append(
        f"Best stream figure per core: {result['best_tokens_per_s_per_core']:,.0f} tokens/s; GPT-2 124M at "
        f"{H100_GPT2_TOKENS_PER_S:,} tokens/s on one H100 would need about "
        f"{result['cores_per_gpu_for_gpt2_124m_h100']} CPU cores per GPU for the data path "
        f"({result['worst_case_cores_per_gpu']} at the slowest configuration measured)."
    )
    return "\n".join(lines) + "\n"


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    """On the efficiency benchmark's real-text corpus (built under `--out` if absent); writes the markdown report."""
    result = data_path_benchmark(str(text_directory(Path(arguments.out) / "data", "full")))
    write_file(arguments.report, "# Data path: tokens/s delivered to a training worker\n\n"
               "`python -m skillit_ray.benchmarks data-path` (skillit_ray/benchmarks/data_path.py), "
               f"{result['cpu_count']} CPU cores, no GPU.\n\n{markdown(result)}".encode())  # fmt: skip
    return result


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="docs/efficiency", help="where the real-text corpus is built (or found)")
    parser.add_argument("--report", default="docs/benchmarks/data_path.md", help="the markdown report")


BENCHMARKS = [
    Benchmark("data-path", "tokens/s the per-skill streams deliver vs plain read + tokenize", run, _arguments)
]
