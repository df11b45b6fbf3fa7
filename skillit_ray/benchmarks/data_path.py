"""`python -m skillit_ray.benchmarks data-path`: tokens/s the per-skill streams deliver to a training worker.

Role in the flow: a benchmark beside the product (not a test). On real BPE-tokenized text (the
efficiency benchmark's corpus, `corpus.py` + `prepare table`, its documents dealt round-robin to
10, 100 or 1,000 skills), it times `data.BatchAssembler` (the worker's per-skill streams, exact
quotas, packing, shuffling: what a training step waits for without prefetch) for each reader
(`ray_data`, `arrow`), skill count and skew (skill 0 weighted 1, 10 or 1,000 times the others),
next to the limit: a plain loop that reads the same files with pyarrow and packs them with the same
tokenizer and function, on the same cores. From the best reader it derives the CPU cores per GPU that
GPT-2 124M at 307k tokens/s (one H100, measured; reference/ray-notes.md) would need.

Ray Data at 100 and 1,000 skills is not run: one Ray Data pipeline per skill per worker spends the
machine on task start-up (200 skills did not finish 30 steps in 15 minutes, `benchmark many-skills`),
which is why `data.parquet.reader=auto` reads with pyarrow above `config.RAY_DATA_MAX_SKILLS`.
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

from skillit_ray.benchmarks.efficiency_settings import SETTINGS, prepare_data
from skillit_ray.benchmarks.registry import Benchmark
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


def _config(dataset: Path, reader: str):
    from skillit_ray.config.job import load_config

    return load_config(None, [
        "data.source=parquet", f"data.parquet.path={dataset}", f"data.parquet.reader={reader}",
        f"data.sequence_length={SEQUENCE_LENGTH}", "data.pack_sequences=true", "data.num_val_per_skill=1",
        f"train.batch_size={BATCH_ROWS}", "mixture.strategy=stratified", "model.size=tiny",
    ])  # fmt: skip


def stream_tokens_per_s(dataset: Path, reader: str, skew: float, steps: int) -> dict:
    """Tokens/s of `BatchAssembler.next_batch` over `steps` steps, one worker (rank 0 of 1), split into
    start-up (opening every skill's stream: the first step) and steady state (the other steps, which go
    through the data more than once, so epoch restarts are counted). Streams read ahead in blocks of up
    to 1,000 rows; every read is inside one of the two clocks."""
    from skillit_ray.data.assembly import BatchAssembler
    from skillit_ray.data.sources.registry import load_skill_tokenizer, resolve_skills
    from skillit_ray.mixture.quotas import round_quotas, round_skill_schedule, split_quotas_across_ranks

    config = _config(dataset, reader)
    setup = resolve_skills(config)
    tokenizer = load_skill_tokenizer(setup)
    assembler = BatchAssembler(config, setup, tokenizer, 0, 1)
    num_skills = len(setup.train_skills)
    weights = np.ones(num_skills)
    weights[0] = skew
    schedule = round_skill_schedule(round_quotas(weights / weights.sum(), steps * BATCH_ROWS), 0, 0)
    tokens, started = 0, time.perf_counter()
    first_step_s = 0.0
    for step in range(steps):
        counts = split_quotas_across_ranks(schedule[step * BATCH_ROWS :][:BATCH_ROWS], num_skills, 1)
        rows, _ = assembler.next_batch(counts, step)
        if step == 0:
            first_step_s = time.perf_counter() - started
        else:
            tokens += int((rows != tokenizer.pad_token_id).sum())
    steady_s = time.perf_counter() - started - first_step_s
    return {
        "tokens_per_s": round(tokens / steady_s, 1) if steps > 1 else None,
        "first_step_s": round(first_step_s, 2),
        "steady_s": round(steady_s, 2),
        "tokens": tokens,
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
    prepared: str, skill_counts=SKILL_COUNTS, skews=SKEWS, epochs: float = 2.0, readers=("arrow", "ray_data")
) -> dict[str, Any]:
    """Every (reader, skills, skew) next to the plain loop; cores per GPU from the best figure. Each
    measurement runs the steps that take `epochs` times the corpus's token rows."""
    import ray

    from skillit_ray.train.launch import LEAN_LOCAL_RAY

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=os.cpu_count() or 2, logging_level="ERROR", **LEAN_LOCAL_RAY)
    work = Path(tempfile.mkdtemp(prefix="skillit-data-path-"))
    rows = []
    try:
        for num_skills in skill_counts:
            dataset = split_corpus(Path(prepared), num_skills, work / f"skills-{num_skills}")
            plain = plain_tokens_per_s(dataset)
            steps = max(2, round(epochs * plain["tokens"] / (BATCH_ROWS * SEQUENCE_LENGTH)))
            for reader in readers:
                for skew in skews:
                    row = {"skills": num_skills, "reader": reader, "skew": f"{skew}:1",
                           "plain_tokens_per_s": plain["tokens_per_s"]}  # fmt: skip
                    if reader == "ray_data" and num_skills > 32:
                        row["tokens_per_s"] = None
                        row["note"] = "not run: one Ray Data pipeline per skill (auto reads with pyarrow above 32)"
                    else:
                        row.update(stream_tokens_per_s(dataset, reader, skew, steps), steps=steps)
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
        "best_tokens_per_s_per_core": round(per_core, 1),
        "cores_per_gpu_for_gpt2_124m_h100": round(H100_GPT2_TOKENS_PER_S / per_core, 1),
        "worst_case_cores_per_gpu": round(H100_GPT2_TOKENS_PER_S / (min(measured) / cores), 1),
    }


def markdown(result: dict[str, Any]) -> str:
    """The figures as a markdown table."""
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
    overrides = prepare_data(SETTINGS["full"]["text"], Path(arguments.out) / "data", "full")
    prepared = next(override.split("=", 1)[1] for override in overrides if override.startswith("data.parquet.path="))
    result = data_path_benchmark(prepared)
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
