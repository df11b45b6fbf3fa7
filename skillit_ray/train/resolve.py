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
import logging

from skillit_ray.config.job import JobConfig
from skillit_ray.data.source import SkillSetup
from skillit_ray.data.sources.registry import resolve_skills, source_for
from skillit_ray.data.tokenizer import UNKNOWN_RATE_SAMPLE_ROWS, check_model_vocabulary, check_unknown_rates
from skillit_ray.data.tokens import automatic_sequence_length, token_ids
from skillit_ray.mixture.registry import check_mixture
from skillit_ray.skills.base import Sample
from skillit_ray.train.model import MAX_ADDED_TOKENS, build_model, check_pretrained_directory, model_limits

logger = logging.getLogger("skillit_ray")


def resolve_run(config: JobConfig) -> tuple[JobConfig, SkillSetup]:
    """(the config with its data shape filled in, the resolved skills); raises ValueError before Ray."""
    config.validate()
    check_mixture(config)
    setup = resolve_skills(config)
    source = source_for(setup)
    tokenizer = source.load_tokenizer()
    positions, vocab_size = model_limits(config.model.size, config.model.pretrained_path, config.model.overrides)
    pretrained_path = config.model.pretrained_path
    model_name = f"model.pretrained_path={pretrained_path}" if pretrained_path else "the model"
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
