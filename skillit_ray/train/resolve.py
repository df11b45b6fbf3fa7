"""Before Ray starts: a run's skills, its tokenizer checked against the data and the model, its data shape.

Role in the flow: config -> **resolve** -> every driver (train, graph, tune) and the in-process runner.
`resolve_run(config)` validates the config and the strategy's options, resolves the skills
(`data/sources/registry.resolve_skills`, with the source's options: which
exist, which train, which evaluate, data on disk checked), loads the tokenizer and checks it on a
sample of every skill (pad token, unknown-token rate) and against the model's vocabulary, and fills
in the data shape left on auto, saying what it chose in the log:

* `data.pack_sequences` unset: packing for plain text (documents joined with EOS and cut into full
  rows: no padding wasted), none for prompt/answer or synthetic samples (one sample per row);
* `data.sequence_length=0`: `data/tokens.automatic_sequence_length` of the sampled rows.
"""

from __future__ import annotations

import copy
import dataclasses
import logging

from skillit_ray.config.job import JobConfig
from skillit_ray.data.hub import find_model_files, model_directory
from skillit_ray.data.source import SkillSetup
from skillit_ray.data.sources.registry import resolve_skills, source_for
from skillit_ray.data.tokenizer import UNKNOWN_RATE_SAMPLE_ROWS, check_model_vocabulary, check_unknown_rates
from skillit_ray.data.tokens import automatic_sequence_length, token_ids
from skillit_ray.mixture.registry import check_mixture
from skillit_ray.skills.base import Sample
from skillit_ray.train.memory import (
    GIB,
    MemoryJob,
    check_fits,
    describe,
    memory_per_gpu,
    memory_table,
    micro_batch_rows,
    model_shape,
)
from skillit_ray.train.model import MAX_ADDED_TOKENS, build_model, check_pretrained_directory, model_limits

logger = logging.getLogger("skillit_ray")


def resolve_run(config: JobConfig) -> tuple[JobConfig, SkillSetup]:
    """(the config with its data shape filled in, the resolved skills); raises ValueError before Ray."""
    config.validate()
    check_mixture(config)
    config = with_model_files(config)
    setup = resolve_skills(config)
    source = source_for(setup)
    tokenizer = source.load_tokenizer()
    pretrained_path = model_directory(config.model)
    positions, vocab_size = model_limits(config.model.size, pretrained_path, config.model.overrides)
    model_name = f"model.{config.model.checkpoint_key}={config.model.checkpoint}" if pretrained_path else "the model"
    stored = source.stored_shape()
    if stored is not None:  # tokenized before the run: the shape is the data's, its text was checked then
        check_model_vocabulary(vocab_size, tokenizer, model_name, MAX_ADDED_TOKENS if pretrained_path else 0)
        resolved = with_stored_shape(config, setup, *stored)
        if positions is not None and stored[0] > positions:
            raise ValueError(
                f"the token store {setup.dataset_path} holds rows of {stored[0]} tokens, more than {model_name}'s "
                f"{positions} positions; prepare the store again with --sequence-length {positions}"
            )
        check_model_builds(resolved, len(tokenizer))
        check_memory(resolved, len(tokenizer))
        return resolved, setup
    skills = list(dict.fromkeys(setup.train_skills + setup.eval_skills))
    items = {skill: source.sample_items(skill, UNKNOWN_RATE_SAMPLE_ROWS, config) for skill in skills}
    texts = {skill: [item.text if isinstance(item, Sample) else item for item in rows] for skill, rows in items.items()}
    where = setup.tokenizer_path or f"built from the {setup.family} vocabulary"
    check_unknown_rates(tokenizer, texts, config.data.max_unknown_token_rate, where)
    check_model_vocabulary(vocab_size, tokenizer, model_name, MAX_ADDED_TOKENS if pretrained_path else 0)
    resolved = with_data_shape(config, setup, tokenizer, items, positions)
    check_samples_fit(resolved, setup, tokenizer, items)
    check_model_builds(resolved, len(tokenizer))
    check_memory(resolved, len(tokenizer))
    return resolved, setup


def meta_model(config: JobConfig, vocab_size: int):
    """The configured model on the meta device (its shape; no memory, no weights read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    directory = model_directory(config.model)
    with torch.device("meta"):
        if directory:
            return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(directory, local_files_only=True))
        model = config.model
        return build_model(model.size, vocab_size, config.data.sequence_length, overrides=model.overrides)


def memory_job(config: JobConfig, **changes) -> MemoryJob:
    """The memory-relevant settings of the config (with `changes`)."""
    train, workers = config.train, changes.pop("workers", config.scaling.num_workers)
    job = MemoryJob(train.parallelism, workers, micro_batch_rows(train.batch_size, train.micro_batch_size, workers),
                    config.data.sequence_length, train.autocast_bf16("cuda" if config.scaling.use_gpu else "cpu"),
                    train.activation_checkpointing, train.fsdp_cpu_offload)  # fmt: skip
    return dataclasses.replace(job, **changes)


def gpu_memory_bytes(config: JobConfig) -> tuple[float, str] | None:
    """(bytes per GPU, where that figure comes from) for a GPU job: `scaling.gpu_memory_gib`, else this machine's
    GPU for a local run; None when unknown (a remote cluster checked without its file, or a CPU job)."""
    if not config.scaling.use_gpu:
        return None
    if config.scaling.gpu_memory_gib:
        return config.scaling.gpu_memory_gib * GIB, f"scaling.gpu_memory_gib={config.scaling.gpu_memory_gib:g}"
    import os

    import torch

    if not (config.run.ray_address or os.environ.get("RAY_ADDRESS")) and torch.cuda.is_available():
        return float(torch.cuda.get_device_properties(0).total_memory), torch.cuda.get_device_name(0)
    return None


def check_memory(config: JobConfig, vocab_size: int) -> None:
    """Refuse, before Ray starts, a GPU job whose estimated memory per GPU exceeds its GPUs' (`memory.py`)."""
    known = gpu_memory_bytes(config)
    if known is None:
        return
    gpu_bytes, where = known
    shape = model_shape(meta_model(config, vocab_size))
    terms = check_fits(shape, memory_job(config), gpu_bytes, config.train.batch_size, where)
    logger.info("memory preflight: %s, on %s of %.0f GiB", describe(terms), where, gpu_bytes / GIB)


def with_model_files(config: JobConfig) -> JobConfig:
    """A pretrained model's files found or fetched now (before Ray starts), its revision pinned to the commit
    it resolved to, and its own tokenizer reading the data when `data.tokenizer_path` is unset."""
    model = config.model
    if not model.checkpoint:
        return config
    files = find_model_files(model.checkpoint, model.revision, model.cache_dir, fetch=True)
    resolved = copy.deepcopy(config)
    if files.commit and files.commit != model.revision:
        resolved.model.revision = files.commit
        logger.info("model %s: revision %s is commit %s (pinned for this run)", model.checkpoint, model.revision,
                    files.commit)  # fmt: skip
    if files.has_tokenizer and not config.data.tokenizer_path:
        resolved.data.tokenizer_path = files.directory
        logger.info("model %s: its own tokenizer reads the data (%s)", model.checkpoint, files.directory)
    return resolved


def check_samples_fit(config: JobConfig, setup: SkillSetup, tokenizer, items: dict) -> None:
    """Synthetic samples (scored on their answer) must fit `data.sequence_length` whole: a cut sample loses
    its answer in training, and its prompt would run past the model's position table in evaluation."""
    samples = [item for rows in items.values() for item in rows if isinstance(item, Sample)]
    if not samples:
        return
    longest = max(
        len(ids) for ids in tokenizer([sample.text for sample in samples], add_special_tokens=False)["input_ids"]
    )
    if longest > config.data.sequence_length:
        raise ValueError(
            f"data.sequence_length={config.data.sequence_length} is shorter than the longest sampled {setup.family} "
            f"sample ({longest} tokens), which would be cut before its answer; set data.sequence_length to at "
            f"least {longest}, or 0 to size it from the data"
        )


def check_model_builds(config: JobConfig, vocab_size: int) -> None:
    """Build the configured model on the meta device (no memory, no weights read) so that a bad size,
    override or pretrained directory fails here, naming the key, not inside a Ray worker."""
    import torch

    model = config.model
    if model.checkpoint:
        check_pretrained_directory(model_directory(model))
        return
    try:
        with torch.device("meta"):
            build_model(model.size, vocab_size, config.data.sequence_length, overrides=model.overrides)
    except Exception as error:  # our checks and transformers' (several exception types)
        raise ValueError(
            f"model.size={model.size} with model.overrides={model.overrides} does not build: "
            f"{type(error).__name__}: {error}"
        ) from None


def with_stored_shape(config: JobConfig, setup: SkillSetup, sequence_length: int, packed: bool) -> JobConfig:
    """A copy of the config with the stored data's shape; a different shape asked for is refused."""
    data, where = config.data, setup.dataset_path
    if data.sequence_length and data.sequence_length != sequence_length:
        raise ValueError(
            f"data.sequence_length={data.sequence_length}, but the token store {where} holds rows of "
            f"{sequence_length} tokens; set data.sequence_length={sequence_length} (or 0), or prepare the store "
            f"again with --sequence-length {data.sequence_length}"
        )
    if data.pack_sequences is not None and data.pack_sequences != packed:
        raise ValueError(
            f"data.pack_sequences={str(data.pack_sequences).lower()}, but the token store {where} was prepared "
            f"with packed={str(packed).lower()}; leave data.pack_sequences unset, or prepare the store again with "
            f"{'--pack' if data.pack_sequences else '--no-pack'}"
        )
    resolved = copy.deepcopy(config)
    resolved.data.sequence_length, resolved.data.pack_sequences = sequence_length, packed
    return resolved


def with_data_shape(config: JobConfig, setup: SkillSetup, tokenizer, items: dict, positions: int | None) -> JobConfig:
    """A copy of the config with `data.pack_sequences` and `data.sequence_length` resolved when on auto."""
    data = config.data
    if data.pack_sequences is not None and data.sequence_length:
        return config
    plain_text = all(isinstance(item, str) for rows in items.values() for item in rows)
    resolved = copy.deepcopy(config)
    notes = []
    if data.pack_sequences is None:
        resolved.data.pack_sequences = plain_text and source_for(setup).packs_text()
        why = "plain text" if plain_text else "one sample per row"
        notes.append(f"data.pack_sequences=auto -> {str(resolved.data.pack_sequences).lower()} ({why})")
    if not data.sequence_length:
        texts = [item.text if isinstance(item, Sample) else item for rows in items.values() for item in rows]
        lengths = [len(ids) for ids in token_ids(tokenizer, texts)]
        length, why = automatic_sequence_length(lengths, bool(resolved.data.pack_sequences), positions)
        resolved.data.sequence_length = length
        notes.append(f"data.sequence_length=auto -> {length} tokens ({why})")
    logger.info("data shape for %s skills: %s", setup.family, "; ".join(notes))
    return resolved


def memory_report(config: JobConfig) -> str:
    """`skillit-ray memory`: the model's shape, the estimate for the configured job by term, and GiB per GPU for
    ddp and fsdp over worker counts (the configured cell in bold); whether it fits the known GPUs."""
    config.validate()
    resolved = with_model_files(config)
    tokenizer = source_for(resolve_skills(resolved)).load_tokenizer()
    shape = model_shape(meta_model(resolved, len(tokenizer)))
    job = memory_job(resolved)
    train = resolved.train
    lines = [
        f"model {resolved.model.checkpoint or resolved.model.size}: {shape.parameters / 1e9:.3f}B parameters, "
        f"{shape.layers} blocks, width {shape.width}, vocabulary {shape.vocabulary}",
        f"job: {job.micro_batch_rows} rows x {job.sequence_length} tokens per forward pass, "
        f"{'bf16' if job.bf16 else 'fp32'}, {job.workers} worker(s), train.parallelism={job.parallelism}, "
        f"activation checkpointing {'on' if job.activation_checkpointing else 'off'}",
        f"estimate: {describe(memory_per_gpu(shape, job))}",
        "",
        memory_table(shape, job, train.batch_size, train.micro_batch_size),
    ]
    known = gpu_memory_bytes(resolved)
    if known is not None:
        gpu_bytes, where = known
        try:
            check_fits(shape, job, gpu_bytes, train.batch_size, where)
            lines.append(f"\nfits {where} ({gpu_bytes / GIB:.0f} GiB per GPU)")
        except ValueError as error:
            lines.append(f"\n{error}")
    return "\n".join(lines)
