"""`skillit-ray prepare`: write a skill-partitioned parquet dataset from a synthetic generator.

Role in the flow: the first stage when data is not generated on the fly. Output layout, read by
`data/sources/parquet.py` (`ParquetDirectorySource`, and any user dataset that follows it):

    DIR/manifest.json                   ordered skill names, row counts, tokenizer directory, source
    DIR/tokenizer/                      the local word-level tokenizer (no hub download)
    DIR/train/<skill>/part-00000.parquet  columns: text, prompt, answer, suffix, skill, row_id
    DIR/val/<skill>/part-00000.parquet    the fixed validation set (same columns)

Part files hold `rows_per_part` rows so that Ray Train workers can read disjoint parts. Files are
written to a temporary name and renamed, so an interrupted prepare never leaves a half file; a
non-empty output directory is refused unless `overwrite`, which clears it first. Tables with a skill
column: `prepare_table.py`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from skillit_ray.config.job import JobConfig
from skillit_ray.data.sources.parquet import MANIFEST_FILE
from skillit_ray.data.sources.registry import source_options
from skillit_ray.data.storage import atomic_write_bytes
from skillit_ray.skills.base import Sample
from skillit_ray.skills.registry import get_skill_generator, skill_generators
from skillit_ray.skills.tokenizer import build_tokenizer, save_tokenizer


def _table(samples: list[Sample], first_row_id: int) -> pa.Table:
    return pa.table(
        {
            "text": [sample.text for sample in samples],
            "prompt": [sample.prompt for sample in samples],
            "answer": [sample.answer for sample in samples],
            "suffix": [sample.suffix for sample in samples],
            "skill": [sample.skill for sample in samples],
            "row_id": list(range(first_row_id, first_row_id + len(samples))),
        }
    )


def _write_table(table: pa.Table, path: Path) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def empty_output_directory(path: str, overwrite: bool) -> Path:
    """`path` as an empty directory; a non-empty one is refused unless `overwrite`, which clears it."""
    out = Path(path)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(
                f"--out {path} is not empty: its files would sit beside the new ones under a manifest that counts "
                "other rows; choose a new directory or pass --overwrite (which clears it first)"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def prepare_synthetic(
    config: JobConfig,
    source: str,
    out_dir: str,
    rows_per_skill: int = 20000,
    rows_per_part: int = 2000,
    overwrite: bool = False,
) -> Path:
    """Write `rows_per_skill` training rows per skill plus the validation sets; returns the manifest path."""
    if source not in skill_generators():
        raise ValueError(f"prepare source {source!r} must be one of {', '.join(skill_generators())}")
    if rows_per_skill < 1 or rows_per_part < 1:
        raise ValueError(f"rows_per_skill={rows_per_skill} and rows_per_part={rows_per_part} must be >= 1")
    options = {
        **dataclasses.asdict(source_options(config, source)),
        "num_validation_samples": config.data.num_val_per_skill,
    }
    generator = get_skill_generator(source, **options)
    root = empty_output_directory(out_dir, overwrite)
    save_tokenizer(build_tokenizer(generator.vocabulary()), root / "tokenizer")
    counts = {}
    for skill_index, skill in enumerate(generator.skill_names):
        for part_index, start in enumerate(range(0, rows_per_skill, rows_per_part)):
            size = min(rows_per_part, rows_per_skill - start)
            samples = [generator.sample_by_index(skill_index, start + i, config.train.seed) for i in range(size)]
            _write_table(_table(samples, start), root / "train" / skill / f"part-{part_index:05d}.parquet")
        validation = generator.validation_set(skill_index, config.data.num_val_per_skill)
        _write_table(_table(validation, 0), root / "val" / skill / "part-00000.parquet")
        counts[skill] = {"train_rows": rows_per_skill, "val_rows": len(validation)}
    manifest = {
        "source": source,
        "skills": generator.skill_names,
        "rows": counts,
        "tokenizer": "tokenizer",
        "text_column": "text",
        "generator_options": options,
        "seed": config.train.seed,
    }
    atomic_write_bytes(root / MANIFEST_FILE, (json.dumps(manifest, indent=2) + "\n").encode())
    return root / MANIFEST_FILE
