"""`skillit-ray discover`: skills for a table without a skill column, from per-sample loss trajectories.

Role in the flow: unlabeled table -> **discover** -> `DIR/discovered.parquet` (a `skill` column)
-> `prepare table` / `train` as they are. The math is in `clustering.py` (no Ray), the Ray edges in
`runs.py`; here the command:

1. Before Ray: the input is read (`data/table.py`: parquet, JSON lines, CSV, a `datasets` folder),
   its text column checked, every row staged with a row number to `DIR/work/rows.parquet` as one
   skill (`all`); the tokenizer is trained (byte-level BPE) or loaded and saved to `DIR/tokenizer`;
   the short runs' config (`--config` YAML + `--set`, on top of `DISCOVERY_DEFAULTS`) is resolved.
2. `--runs` short runs from seeds `seed, seed + 1, ...` as parallel Ray Tune trials (one run each;
   `graph.cpus_per_trial` / `graph.gpus_per_trial` CPUs and GPUs), each the ordinary in-process
   training loop on the unlabeled rows; the model weights at `--checkpoints` evenly spaced steps are
   kept under `DIR/runs/run_<i>/`.
3. Ray Data batch inference: `map_batches` with `TrajectoryScorer` (an actor per scoring slot that
   holds every checkpoint's weights) scores every row's mean token loss at every checkpoint, and its
   embedding (mean last hidden state, last checkpoint of the first run): scoring scales with the cluster.
4. The trajectories are clustered (`clustering.fit_clusters`, k-means on `--fit-rows` seeded rows),
   and so are the embeddings (the baseline, same model, same clusterer). With `--true-skill-column`
   (evaluation only: the method never reads it) both are scored against it: matching accuracy and
   adjusted Rand index.

Written to DIR: `discovered.parquet` (`row`, the text column, `skill`, the embedding baseline's
`embedding_skill`, and `true_<column>` when given), `trajectories.npz` (losses, embeddings, both
label sets), `discovery.json` (options, runs, steps, cluster sizes, timings, scores). Deterministic
given `--seed`: seeded runs, seeded fit rows, seeded k-means.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from skillit_ray.config.job import JobConfig, config_from_dict
from skillit_ray.data.table import open_table, require_columns
from skillit_ray.discovery.clustering import (
    TRAJECTORY_NORMALIZATIONS,
    adjusted_rand_index,
    check_discovery_request,
    fit_clusters,
    matching_accuracy,
    skill_names,
    standardize_columns,
    trajectory_features,
)
from skillit_ray.discovery.runs import run_short_runs, score_rows

logger = logging.getLogger("skillit_ray")

STAGED_SKILL = "all"
"""The one skill of the staged rows: the short runs train on the unlabeled data as one stream."""
DISCOVERY_DEFAULTS = [
    "mixture.strategy=stratified", "mixture.num_rounds=1", "model.size=tiny", "data.num_val_per_skill=16",
    "train.batch_size=16", "train.learning_rate=0.001", "train.warmup_steps=10", "data.sequence_length=128",
]  # fmt: skip
"""Short-run settings under `--config` / `--set` (a YAML or --set wins)."""


@dataclass
class DiscoverOptions:
    """What `skillit-ray discover` reads, runs and writes (the command's flags)."""

    input: str
    out: str
    num_skills: int
    text_column: str = "text"
    prompt_column: str = ""
    answer_column: str = ""
    true_skill_column: str = ""
    runs: int = 4
    steps: int = 200
    checkpoints: int = 4
    fit_rows: int = 20000
    normalization: str = "centered"
    seed: int = 0
    tokenizer: str = ""
    tokenizer_vocab_size: int = 0
    config: str = ""
    overrides: list[str] = field(default_factory=list)
    scoring_workers: int = 0
    overwrite: bool = False

    def validate(self) -> None:
        if self.num_skills < 2:
            check_discovery_request(self.num_skills, self.num_skills, self.input)
        minimums = [("--runs", self.runs, 1), ("--checkpoints", self.checkpoints, 1), ("--fit-rows", self.fit_rows, 0),
                    ("--scoring-workers", self.scoring_workers, 0)]  # fmt: skip
        for flag, value, least in minimums:
            if value < least:
                raise ValueError(f"{flag} {value} must be >= {least}")
        if self.steps < self.checkpoints:
            raise ValueError(f"--steps {self.steps} is below --checkpoints {self.checkpoints}: one step per checkpoint")
        if self.normalization not in TRAJECTORY_NORMALIZATIONS:
            raise ValueError(f"--normalization {self.normalization!r} is not one of {TRAJECTORY_NORMALIZATIONS}")
        if bool(self.tokenizer) == bool(self.tokenizer_vocab_size):
            raise ValueError("give exactly one of --tokenizer PATH or --tokenizer-vocab-size N (train a BPE here)")
        if bool(self.prompt_column) != bool(self.answer_column):
            raise ValueError("--prompt-column and --answer-column go together; give both or neither")
        if self.true_skill_column and self.true_skill_column in (
            self.text_column,
            self.prompt_column,
            self.answer_column,
        ):
            raise ValueError(
                f"--true-skill-column {self.true_skill_column!r} is also a text column the method reads; "
                "name the label column"
            )


# ----------------------------------------------------------------------------- 1. before Ray


def stage_rows(options: DiscoverOptions, work: Path) -> tuple[int, list[str] | None]:
    """Stream the input's text (or prompt and answer) columns to `work/rows.parquet`, keeping the true
    skill column (evaluation only) in memory."""
    reader = open_table(options.input)
    if options.prompt_column:
        roles = {"--prompt-column": options.prompt_column, "--answer-column": options.answer_column}
    else:
        roles = {"--text-column": options.text_column}
    truth_column = {"--true-skill-column": options.true_skill_column} if options.true_skill_column else {}
    require_columns(reader, {**roles, **truth_column}, tuple(roles))
    work.mkdir(parents=True, exist_ok=True)
    names = ["prompt", "answer"] if options.prompt_column else ["text"]
    schema = pa.schema([("row", pa.int64()), *((name, pa.string()) for name in names), ("skill", pa.string())])
    truth: list[str] = []
    rows = 0
    with pq.ParquetWriter(work / "rows.parquet", schema) as writer:
        read = list(roles.values()) + ([options.true_skill_column] if options.true_skill_column else [])
        for batch in reader.batches(read, 8192):
            columns = {
                name: [value or "" for value in batch.column(index).to_pylist()] for index, name in enumerate(names)
            }
            if options.true_skill_column:
                truth.extend(str(value) for value in batch.column(len(names)).to_pylist())
            count = batch.num_rows
            table = {"row": np.arange(rows, rows + count, dtype=np.int64), **columns, "skill": [STAGED_SKILL] * count}
            writer.write_table(pa.table(table, schema=schema))
            rows += count
    check_discovery_request(rows, options.num_skills, reader.description)
    return rows, truth or None


def save_tokenizer(options: DiscoverOptions, work: Path, out: Path) -> str:
    from skillit_ray.data.tokenizer import tokenizer_from_path, train_bpe_tokenizer

    if options.tokenizer:
        tokenizer = tokenizer_from_path(options.tokenizer)
    else:
        names = ["prompt", "answer"] if options.prompt_column else ["text"]
        texts = ("".join(values) for batch in pq.ParquetFile(work / "rows.parquet").iter_batches(columns=names)
                 for values in zip(*(column.to_pylist() for column in batch.columns)))  # fmt: skip
        tokenizer = train_bpe_tokenizer(texts, options.tokenizer_vocab_size)
    tokenizer.save_pretrained(str(out / "tokenizer"))
    return str(out / "tokenizer")


def short_run_config(options: DiscoverOptions, work: Path, tokenizer_path: str) -> JobConfig:
    """The short runs' config: `DISCOVERY_DEFAULTS`, then `--config`, then `--set`, then the staged data."""
    from skillit_ray.config.job import with_absolute_local_paths
    from skillit_ray.config.loading import apply_override, read_yaml_mapping
    from skillit_ray.train.resolve import resolve_run

    raw: dict[str, Any] = {}
    for override in DISCOVERY_DEFAULTS:
        apply_override(raw, override)
    for section, values in (read_yaml_mapping(options.config) if options.config else {}).items():
        if isinstance(values, dict) and isinstance(raw.get(section), dict):
            raw[section].update(values)
        else:
            raw[section] = values
    fixed = {"data.source": "table", "data.table.path": str(work / "rows.parquet"), "data.table.skill_column": "skill",
             "data.table.text_column": "text", "data.tokenizer_path": tokenizer_path,
             "data.table.prompt_column": "prompt" if options.prompt_column else "",
             "data.table.answer_column": "answer" if options.prompt_column else "",
             "data.train_skills": "[]", "data.eval_skills": "[]",
             "train.steps": options.steps, "train.eval_every_n_steps": options.steps,
             "train.checkpoint_every_n_steps": max(1, options.steps // options.checkpoints)}  # fmt: skip
    for override in list(options.overrides) + [f"{key}={value}" for key, value in fixed.items()]:
        apply_override(raw, override)
    resolved, _ = resolve_run(with_absolute_local_paths(config_from_dict(raw).validate()))
    return resolved


# ----------------------------------------------------------------------------- 4. cluster and write


def cluster_and_score(losses, embeddings, truth: list[str] | None, options: DiscoverOptions) -> dict[str, Any]:
    """Both methods' labels and, with the true skills, their matching accuracy and adjusted Rand index."""
    methods = {
        "loss_trajectories": trajectory_features(losses, options.normalization),
        "embeddings": standardize_columns(embeddings),
    }
    result: dict[str, Any] = {}
    for name, features in methods.items():
        labels, summary = fit_clusters(features, options.num_skills, options.seed, options.fit_rows)
        entry = {"labels": labels, **summary}
        if truth is not None:
            entry.update(
                accuracy=matching_accuracy(truth, labels), adjusted_rand_index=adjusted_rand_index(truth, labels)
            )
        result[name] = entry
    return result


def write_outputs(out: Path, staged: Path, truth, losses, embeddings, clusters: dict, report: dict) -> None:
    from skillit_ray.data.storage import atomic_write_bytes

    table = pq.read_table(staged).drop_columns(["skill"])
    columns = {**{name: table.column(name) for name in table.column_names},
               "skill": skill_names(clusters["loss_trajectories"]["labels"]),
               "embedding_skill": skill_names(clusters["embeddings"]["labels"])}  # fmt: skip
    if truth is not None:
        columns["true_skill"] = truth
    pq.write_table(pa.table(columns), out / "discovered.parquet")
    np.savez_compressed(out / "trajectories.npz", losses=losses, embeddings=embeddings,
                        loss_labels=clusters["loss_trajectories"]["labels"],
                        embedding_labels=clusters["embeddings"]["labels"])  # fmt: skip
    atomic_write_bytes(out / "discovery.json", (json.dumps(report, indent=2) + "\n").encode())


def run_discover(arguments: Any) -> dict[str, Any]:
    """`skillit-ray discover` from its parsed flags: `discover`, or `recluster` with `--recluster`."""
    names = [item.name for item in dataclasses.fields(DiscoverOptions) if hasattr(arguments, item.name)]
    options = DiscoverOptions(**{name: getattr(arguments, name) for name in names})
    options.config = options.config or ""
    return recluster(options) if arguments.recluster else discover(options)


def discover(options: DiscoverOptions) -> dict[str, Any]:
    """The whole command; returns the report written to `discovery.json` (labels left out)."""
    from skillit_ray.data.prepare.generators import empty_output_directory
    from skillit_ray.train.launch import connect_ray

    options.validate()
    out = empty_output_directory(options.out, options.overwrite)
    work = out / "work"
    started = time.perf_counter()
    num_rows, truth = stage_rows(options, work)
    config = short_run_config(options, work, save_tokenizer(options, work, out))
    connect_ray(config)
    runs_started = time.perf_counter()
    checkpoints = run_short_runs(config, options.runs, options.seed, out)
    scoring_started = time.perf_counter()
    losses, embeddings = score_rows(work / "rows.parquet", config, checkpoints, options.scoring_workers)
    clustering_started = time.perf_counter()
    clusters = cluster_and_score(losses, embeddings, truth, options)
    report = {
        "options": {key: value for key, value in asdict(options).items() if key != "overwrite"},
        "rows": num_rows,
        "checkpoint_steps": [int(Path(path).stem.split("_")[1]) for path in checkpoints[0]],
        "methods": {
            name: {key: value for key, value in entry.items() if key != "labels"} for name, entry in clusters.items()
        },  # fmt: skip
        "seconds": {
            "prepare": round(runs_started - started, 1),
            "short_runs": round(scoring_started - runs_started, 1),
            "scoring": round(clustering_started - scoring_started, 1),
            "clustering": round(time.perf_counter() - clustering_started, 1),
        },  # fmt: skip
        "short_run_config": config.to_dict(),
    }
    write_outputs(out, work / "rows.parquet", truth, losses, embeddings, clusters, report)
    logger.info("discover: %s", json.dumps({name: {key: entry.get(key) for key in ("accuracy", "adjusted_rand_index",
                "cluster_sizes")} for name, entry in report["methods"].items()}))  # fmt: skip
    return report


CLUSTERING_OPTIONS = ("num_skills", "normalization", "fit_rows")
"""Options that only change the clustering: `--recluster` applies new values to the trajectories already there."""


def recluster(options: DiscoverOptions) -> dict[str, Any]:
    """Cluster again the trajectories and embeddings an earlier `discover` wrote to `options.out`, with this
    call's K, normalization and fit rows (no short runs, no scoring; the earlier seed); rewrites the table and
    the report. Every other option is the earlier run's."""
    out = Path(options.out)
    if not (out / "trajectories.npz").is_file() or not (out / "discovery.json").is_file():
        raise ValueError(f"--recluster: {out} has no trajectories.npz and discovery.json; run discover there first")
    report = json.loads((out / "discovery.json").read_text())
    arrays = np.load(out / "trajectories.npz")
    check_discovery_request(len(arrays["losses"]), options.num_skills, str(out / "trajectories.npz"))
    table = pq.read_table(out / "discovered.parquet")
    truth = table.column("true_skill").to_pylist() if "true_skill" in table.column_names else None
    seeded = dataclasses.replace(options, seed=report["options"]["seed"])
    clusters = cluster_and_score(arrays["losses"], arrays["embeddings"], truth, seeded)
    report["options"].update({key: getattr(options, key) for key in CLUSTERING_OPTIONS})
    report["methods"] = {
        name: {key: value for key, value in entry.items() if key != "labels"} for name, entry in clusters.items()
    }
    write_outputs(out, out / "work" / "rows.parquet", truth, arrays["losses"], arrays["embeddings"], clusters, report)
    return report
