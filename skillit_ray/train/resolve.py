"""Before Ray starts: a run's skills, its tokenizer checked against the data and the model, its data shape.

Role in the flow: config -> **resolve** -> every driver (train, graph, tune) and the in-process runner.
`resolve_run(config)` validates the config and the strategy's options, resolves the skills
(`data/sources/registry.resolve_skills`, with the source's options: which
exist, which train, which evaluate, data on disk checked), loads the tokenizer and checks it on a
sample of every skill (pad token, unknown-token rate) and against the model's vocabulary, and fills
in the data shape left on auto, saying what it chose in the log:

* `data.pack_sequences` unset: packing for plain text (documents joined with EOS and cut into full
  rows: no padding wasted), none for prompt/answer or synthetic samples (one sample per row);
* `data.sequence_length=0`: without packing, the longest sampled row (rounded up to a multiple of 8)
  so nothing is truncated; with packing, the median document length rounded up to a power of two in
  64..512. Both are capped by the model's position table when it has a fixed one.
"""

from __future__ import annotations

import copy
import logging

import numpy as np

from skillit_ray.config.job import JobConfig
from skillit_ray.data.source import SkillSetup
from skillit_ray.data.sources.registry import resolve_skills, source_for
from skillit_ray.data.tokenizer import UNKNOWN_RATE_SAMPLE_ROWS, check_model_vocabulary, check_unknown_rates
from skillit_ray.mixture.registry import check_mixture
from skillit_ray.skills.base import Sample
from skillit_ray.train.model import MAX_ADDED_TOKENS, build_model, check_pretrained_directory, model_limits

logger = logging.getLogger("skillit_ray")

PACKED_LENGTH_RANGE = (64, 512)
"""Packed text: the automatic sequence length stays in this range (tokens)."""


def resolve_run(config: JobConfig) -> tuple[JobConfig, SkillSetup]:
    """(the config with its data shape filled in, the resolved skills); raises ValueError before Ray."""
    config.validate()
    check_mixture(config)
    setup = resolve_skills(config)
    source = source_for(setup)
    tokenizer = source.load_tokenizer()
    skills = list(dict.fromkeys(setup.train_skills + setup.eval_skills))
    items = {skill: source.sample_items(skill, UNKNOWN_RATE_SAMPLE_ROWS, config) for skill in skills}
    texts = {skill: [item.text if isinstance(item, Sample) else item for item in rows] for skill, rows in items.items()}
    where = setup.tokenizer_path or f"built from the {setup.family} vocabulary"
    check_unknown_rates(tokenizer, texts, config.data.max_unknown_token_rate, where)
    positions, vocab_size = model_limits(config.model.size, config.model.pretrained_path, config.model.overrides)
    pretrained_path = config.model.pretrained_path
    model_name = f"model.pretrained_path={pretrained_path}" if pretrained_path else "the model"
    check_model_vocabulary(vocab_size, tokenizer, model_name, MAX_ADDED_TOKENS if config.model.pretrained_path else 0)
    resolved = with_data_shape(config, setup, tokenizer, items, positions)
    check_samples_fit(resolved, setup, tokenizer, items)
    check_model_builds(resolved, len(tokenizer))
    return resolved, setup


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
    if model.pretrained_path:
        check_pretrained_directory(model.pretrained_path)
        return
    try:
        with torch.device("meta"):
            build_model(model.size, vocab_size, config.data.sequence_length, overrides=model.overrides)
    except Exception as error:  # our checks and transformers' (several exception types)
        raise ValueError(
            f"model.size={model.size} with model.overrides={model.overrides} does not build: "
            f"{type(error).__name__}: {error}"
        ) from None


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
        lengths = np.asarray([len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]])
        if resolved.data.pack_sequences:
            length = int(2 ** np.ceil(np.log2(max(1.0, float(np.median(lengths))))))
            length, why = int(np.clip(length, *PACKED_LENGTH_RANGE)), f"median document {int(np.median(lengths))}"
        else:
            length, why = max(8, int(np.ceil(lengths.max() / 8) * 8)), f"longest sampled row {int(lengths.max())}"
        if positions is not None and length > positions:
            length, why = positions, f"{why}, capped by the model's {positions} positions"
        resolved.data.sequence_length = length
        notes.append(f"data.sequence_length=auto -> {length} tokens ({why})")
    logger.info("data shape for %s skills: %s", setup.family, "; ".join(notes))
    return resolved
