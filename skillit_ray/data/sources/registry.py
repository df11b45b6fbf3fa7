"""Where a run's skills come from: the source interface, its implementations, and skill resolution.

Role in the flow: config -> **sources** -> streams/assembly -> train. `resolve_skills(config)` runs on
the driver before Ray starts: it asks the configured source which skills exist, checks the skills the
config names against them, settles the evaluation skills of the setting, checks the data on disk,
and returns a `SkillSetup` (plain data, sent to every worker). Workers turn the setup back into its
source with `source_for(setup)` and ask it for the tokenizer, one training stream per skill, the
fixed validation sets and, for the sample-level curriculum, pool items.

A source is one `SkillSource` subclass plus one `SOURCES` line:

* `GeneratorSource` ("generator"): LEGO or addition samples generated on the fly (`skills/`);
* `ParquetDirectorySource` ("parquet"): a directory written by `skillit-ray prepare`:
  `DIR/manifest.json` (`{"skills": [...]}`), `DIR/train/<skill>/*.parquet`, `DIR/val/<skill>/*.parquet`
  with a text column (or prompt/answer columns), and `DIR/tokenizer/`;
* `table.TableSource` ("table"): a table with a skill column, read as is.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skillit_ray.config.job import GENERATOR_SOURCES
from skillit_ray.data.source import SkillSetup, SkillSource, ValidationSet, validation_from_items
from skillit_ray.data.streams import GeneratorSkillStream, ParquetSkillStream, PositionalParquetSkillStream, list_parts
from skillit_ray.data.table import TableSource
from skillit_ray.data.tokenizer import load_checked_tokenizer
from skillit_ray.mixture.settings import resolve_eval_skills
from skillit_ray.skills.base import Sample
from skillit_ray.skills.registry import get_skill_generator
from skillit_ray.skills.tokenizer import build_tokenizer

if TYPE_CHECKING:
    from skillit_ray.config.job import JobConfig

logger = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"


def generator_options(config: JobConfig) -> dict[str, Any]:
    data = config.data
    if data.source == "lego":
        return {"num_variables": data.lego_num_variables, "num_validation_samples": data.num_val_per_skill}
    if data.source == "lookup":
        return {
            "num_variables": data.lego_num_variables,
            "num_chains": data.lookup_num_chains,
            "num_validation_samples": data.num_val_per_skill,
        }
    if data.source == "staircase":
        return {
            "num_skills": data.staircase_num_skills,
            "chain_length": data.staircase_chain_length,
            "negation_probability": data.staircase_negation_probability,
            "num_validation_samples": data.num_val_per_skill,
        }
    return {"num_digits": data.addition_num_digits, "num_validation_samples": data.num_val_per_skill}


class GeneratorSource(SkillSource):
    """LEGO or addition samples generated on the fly: sample i of a skill is a pure function of (seed, skill, i)."""

    kind = "generator"

    @classmethod
    def describe(cls, config: JobConfig) -> dict[str, Any]:
        options = generator_options(config)
        generator = get_skill_generator(config.data.source, **options)
        return {
            "family": config.data.source,
            "all_skills": generator.skill_names,
            "tokenizer_path": config.data.tokenizer_path,
            "generator_options": options,
        }

    @property
    def generator(self):
        return get_skill_generator(self.setup.family, **self.setup.generator_options)

    def check(self, config: JobConfig) -> None:
        pass  # generated on demand: nothing on disk to check

    def load_tokenizer(self):
        if self.setup.tokenizer_path:
            return load_checked_tokenizer(self.setup.tokenizer_path)
        return build_tokenizer(self.generator.vocabulary())

    def open_stream(self, skill: str, tokenizer, config: JobConfig, rank: int, world_size: int):
        return GeneratorSkillStream(self.setup, skill, tokenizer, config.data.sequence_length, config.train.seed)

    def validation_set(self, skill: str, tokenizer, config: JobConfig) -> ValidationSet:
        generator = self.generator
        samples = generator.validation_set(generator.skill_names.index(skill), config.data.num_val_per_skill)
        return ValidationSet(skill, samples=samples)

    def pool_reader(self, skill: str, count: int, config: JobConfig) -> Callable[[int], Sample]:
        generator = self.generator
        skill_index, seed = generator.skill_names.index(skill), config.train.seed
        return lambda index: generator.sample_by_index(skill_index, index, seed)


def read_manifest(dataset_path: str) -> dict[str, Any]:
    """The manifest written by `skillit-ray prepare`; clear error when it is missing or broken."""
    manifest_path = Path(dataset_path) / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ValueError(
            f"data.path={dataset_path} has no {MANIFEST_FILE}; write the dataset with "
            "`skillit-ray prepare lego|addition --out DIR` or add a manifest listing the skills"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{manifest_path} is not valid JSON ({error}); re-run `skillit-ray prepare`") from error
    if not isinstance(manifest, dict):
        raise ValueError(
            f"{manifest_path} holds a {type(manifest).__name__}, not a mapping: write it as "
            '{"skills": ["skill_a", "skill_b"]} (and the tokenizer directory under "tokenizer")'
        )
    if not isinstance(manifest.get("skills"), list) or not manifest["skills"]:
        raise ValueError(f'{manifest_path} must list the skills under the key \'skills\', e.g. {{"skills": ["a"]}}')
    return manifest


def check_parquet_skill(directory: Path, skill: str, split: str, text_column: str) -> None:
    """Fail before any cluster work when a skill's shards are missing, empty, corrupt or lack the column."""
    import pyarrow.parquet as pq

    parts = list_parts(directory) if directory.is_dir() else []
    if not parts:
        raise ValueError(
            f"skill {skill!r} has no parquet files in {directory}; every skill needs "
            f"{split}/<skill>/part-*.parquet (re-run `skillit-ray prepare` or fix data.path)"
        )
    total_rows = 0
    for part in parts:
        try:
            metadata = pq.read_metadata(str(part))
        except Exception as error:
            raise ValueError(f"{part} is not a readable parquet file ({error}); rewrite or remove it") from error
        columns = metadata.schema.to_arrow_schema().names
        if text_column not in columns and not {"prompt", "answer"} <= set(columns):
            raise ValueError(
                f"{part} has columns {columns} but no {text_column!r}; set data.text_column to the text column"
            )
        total_rows += metadata.num_rows
    if total_rows == 0:
        raise ValueError(f"skill {skill!r} has only empty parquet files in {directory}; it needs at least one row")


def samples_from_table(table, skill: str) -> list[Sample]:
    """Prompt/answer(/suffix) rows of a parquet table (as `skillit-ray prepare` writes them) as Samples."""
    columns = set(table.column_names)
    prompts, answers = table.column("prompt").to_pylist(), table.column("answer").to_pylist()
    suffixes = table.column("suffix").to_pylist() if "suffix" in columns else [""] * table.num_rows
    return [
        Sample(skill=skill, prompt=prompt, answer=answer, suffix=suffix)
        for prompt, answer, suffix in zip(prompts, answers, suffixes)
    ]


class ParquetDirectorySource(SkillSource):
    """A prepared dataset directory: one parquet directory per skill and split, a manifest, a tokenizer."""

    kind = "parquet"

    @classmethod
    def describe(cls, config: JobConfig) -> dict[str, Any]:
        data = config.data
        manifest = read_manifest(data.path)
        family = manifest.get("source", data.source)
        return {
            "family": family,
            "all_skills": list(manifest["skills"]),
            "dataset_path": data.path,
            "tokenizer_path": data.tokenizer_path or str(Path(data.path) / manifest.get("tokenizer", "tokenizer")),
            "generator_options": generator_options(config) if family in GENERATOR_SOURCES else {},
        }

    def check(self, config: JobConfig) -> None:
        for split, names in (("train", self.setup.train_skills), ("val", self.setup.eval_skills)):
            for name in names:
                check_parquet_skill(Path(self.setup.dataset_path) / split / name, name, split, config.data.text_column)

    def load_tokenizer(self):
        return load_checked_tokenizer(self.setup.tokenizer_path)

    def open_stream(self, skill: str, tokenizer, config: JobConfig, rank: int, world_size: int):
        if config.data.parquet_split == "positions":
            return PositionalParquetSkillStream(self.setup, skill, tokenizer, config)
        return ParquetSkillStream(self.setup, skill, tokenizer, config, rank, world_size)

    def validation_set(self, skill: str, tokenizer, config: JobConfig) -> ValidationSet:
        import pyarrow.parquet as pq

        parts = list_parts(Path(self.setup.dataset_path) / "val" / skill)
        try:
            table = pq.read_table([str(part) for part in parts]) if len(parts) > 1 else pq.read_table(str(parts[0]))
        except Exception as error:
            raise ValueError(
                f"cannot read validation parquet of skill {skill!r} in {parts[0].parent}: {error}"
            ) from error
        table = table.slice(0, config.data.num_val_per_skill)
        columns = set(table.column_names)
        if {"prompt", "answer"} <= columns:
            items = samples_from_table(table, skill)
        elif config.data.text_column in columns:
            items = [str(text) for text in table.column(config.data.text_column).to_pylist()]
        else:
            raise ValueError(
                f"validation parquet of skill {skill!r} has columns {sorted(columns)}; it needs "
                f"data.text_column={config.data.text_column!r} (or prompt + answer)"
            )
        return validation_from_items(skill, items, tokenizer, config.data.sequence_length)

    def sample_items(self, skill: str, count: int, config: JobConfig) -> list[Sample | str]:
        """Up to `count` first rows of the skill's train part files, in file order."""
        import pyarrow.parquet as pq

        rows: list = []
        for part in list_parts(Path(self.setup.dataset_path) / "train" / skill):
            table = pq.read_table(str(part))
            if {"prompt", "answer"} <= set(table.column_names):
                rows.extend(samples_from_table(table, skill))
            else:
                rows.extend(str(text) for text in table.column(config.data.text_column).to_pylist())
            if len(rows) >= count:
                break
        return rows[:count]

    def pool_reader(self, skill: str, count: int, config: JobConfig) -> Callable[[int], Sample | str]:
        """The first rows of the skill's train part files in file order, held in memory (cycled when short)."""
        rows = self.sample_items(skill, count, config)
        if len(rows) < count:
            logger.info("curriculum pool: skill %s has %d rows for a share of %d; cycling", skill, len(rows), count)
        return lambda index: rows[index % len(rows)]


SOURCES: dict[str, type[SkillSource]] = {
    "generator": GeneratorSource,
    "parquet": ParquetDirectorySource,
    "table": TableSource,
}
"""Every kind of skill source, by `SkillSetup.kind`."""


def source_kind(config: JobConfig) -> str:
    """The source a config asks for: a table, a prepared directory (data.path set), else the generator."""
    if config.data.source == "table":
        return "table"
    return "parquet" if config.data.path else "generator"


def source_for(setup: SkillSetup) -> SkillSource:
    return SOURCES[setup.kind](setup)


def resolve_skills(config: JobConfig) -> SkillSetup:
    """Training and evaluation skills in graph order, checked against what the data offers."""
    data = config.data
    kind = source_kind(config)
    described = SOURCES[kind].describe(config)
    available = described.pop("all_skills")
    train_skills = list(data.train_skills) or list(available)
    candidates = train_skills + list(data.eval_skills) + list(config.mixture.target_skills)
    unknown = [name for name in candidates if name not in available]
    if unknown:
        raise ValueError(
            f"skill(s) {unknown} named in the config are not in the data; available skills: {available}. "
            "Fix data.train_skills / data.eval_skills / mixture.target_skills"
        )
    eval_skills = resolve_eval_skills(
        config.mixture.setting, train_skills, list(data.eval_skills), list(config.mixture.target_skills)
    )
    setup = SkillSetup(kind=kind, train_skills=train_skills, eval_skills=eval_skills, all_skills=available, **described)
    source_for(setup).check(config)
    return setup


def load_skill_tokenizer(setup: SkillSetup):
    """The run's local tokenizer: the dataset's / configured directory, else built from the generator vocabulary."""
    return source_for(setup).load_tokenizer()


def load_validation_sets(config: JobConfig, setup: SkillSetup, tokenizer) -> list[ValidationSet]:
    """Fixed validation data per evaluation skill (the same on every worker and every run)."""
    source = source_for(setup)
    return [source.validation_set(skill, tokenizer, config) for skill in setup.eval_skills]
