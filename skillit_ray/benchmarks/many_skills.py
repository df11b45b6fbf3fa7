"""`many-skills`: N small parquet text skills trained end to end, one stratified `run_training`.

Role in the flow: a benchmark (`python -m skillit_ray.benchmarks many-skills [--skills N] [--set k=v]`) of
the parquet source's readers at many skills; compare `--set data.parquet.reader=ray_data` and `=arrow`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from skillit_ray.benchmarks.registry import Benchmark, add_overrides
from skillit_ray.config.job import load_config


def write_text_skills(root: str, num_skills: int, rows_per_part: int = 30, parts_per_skill: int = 2) -> list[str]:
    """A parquet dataset of `num_skills` synthetic text skills with manifest and local tokenizer."""
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    from skillit_ray.skills.tokenizer import build_tokenizer, save_tokenizer

    directory, words = Path(root), [f"w{index}" for index in range(50)]
    save_tokenizer(build_tokenizer(words), directory / "tokenizer")
    skills = [f"skill_{index:03d}" for index in range(num_skills)]
    for skill_index, skill in enumerate(skills):
        texts = [" ".join(words[(skill_index + row + k) % 50] for k in range(12)) for row in range(rows_per_part)]
        for split, num_parts in (("train", parts_per_skill), ("val", 1)):
            (directory / split / skill).mkdir(parents=True, exist_ok=True)
            for part in range(num_parts):
                pq.write_table(pa.table({"text": texts}), directory / split / skill / f"part-{part:05d}.parquet")
    (directory / "manifest.json").write_text(json.dumps({"source": "parquet", "skills": skills}))
    return skills


def many_skills(num_skills: int, overrides: list[str]) -> dict:
    from skillit_ray.data.sources.registry import resolve_skills
    from skillit_ray.data.streams import resolved_reader
    from skillit_ray.train.launch import connect_ray, run_training

    dataset = tempfile.mkdtemp(prefix="skillit-many-skills-")
    write_text_skills(dataset, num_skills)
    config = load_config(
        None,
        ["data.source=parquet", f"data.parquet.path={dataset}", "data.sequence_length=16", "model.size=tiny",
         "train.steps=30", "train.batch_size=64", "train.eval_every_n_steps=30", "mixture.num_rounds=3",
         "mixture.strategy=stratified", "data.num_val_per_skill=4", "scaling.num_workers=2",
         f"run.storage_path={tempfile.mkdtemp(prefix='skillit-many-skills-runs-')}", "run.name=many-skills"]
        + overrides,
    )  # fmt: skip
    setup = resolve_skills(config)
    reader = resolved_reader(setup.options["reader"], len(setup.train_skills))
    connect_ray(config)
    started = time.perf_counter()
    run_training(config)
    return {
        "benchmark": "many-skills",
        "num_skills": num_skills,
        "reader": reader if setup.options["split"] == "files" else "arrow (positions)",
        "num_workers": config.scaling.num_workers,
        "steps": config.train.steps,
        "batch_size": config.train.batch_size,
        "end_to_end_s": round(time.perf_counter() - started, 1),
        "cpu_count": os.cpu_count(),
    }


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--skills", type=int, default=200, help="number of skills")
    add_overrides(parser)


BENCHMARKS = [
    Benchmark(
        "many-skills",
        "N parquet text skills trained end to end (time, reader)",
        lambda arguments: many_skills(arguments.skills, arguments.overrides),
        _arguments,
    )
]
