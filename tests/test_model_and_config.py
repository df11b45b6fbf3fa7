"""Model building honours the config, graph short runs have their own schedule, and config help and
errors say where: architecture overrides, pretrained paths, fingerprints, `skillit-ray keys`, YAML lines.

Run: `.venv/bin/python -m pytest tests/test_model_and_config.py`.
"""

from __future__ import annotations

import pytest
from conftest import small_config

from skillit_ray.cli import main
from skillit_ray.config.job import load_config
from skillit_ray.data.sources.registry import resolve_skills
from skillit_ray.train.checkpoint import config_fingerprint
from skillit_ray.train.model import build_model
from skillit_ray.tune.trials import short_run_config


@pytest.mark.parametrize("architecture, model_class, layers_key", [
    ("llama", "LlamaForCausalLM", "num_hidden_layers"),
    ("gpt_neo", "GPTNeoForCausalLM", "num_layers"),
    ("gpt2", "GPT2LMHeadModel", "n_layer"),
])  # fmt: skip
def test_an_architecture_override_builds_that_architecture_with_the_named_shape(architecture, model_class, layers_key):
    model = build_model("tiny", 40, 32, overrides={"model_type": architecture})
    assert type(model).__name__ == model_class and model.config.model_type == architecture
    assert getattr(model.config, layers_key) == 2 and model.config.hidden_size == 128
    assert model.config.vocab_size == 40


def test_an_unknown_architecture_is_refused_with_the_valid_choices():
    with pytest.raises(ValueError, match="model_type='bert'.*gpt2, gpt_neo, llama"):
        build_model("tiny", 40, 32, overrides={"model_type": "bert"})


def test_overrides_with_a_pretrained_path_are_an_error_that_says_which_wins(tmp_path):
    with pytest.raises(ValueError, match="model.overrides.*model.pretrained_path.*config.json wins"):
        load_config(None, [f"model.pretrained_path={tmp_path}", "model.overrides={n_layer: 1}"])
    build_model("tiny", 40, 32).save_pretrained(tmp_path / "base")
    with pytest.raises(ValueError, match="config.json wins"):
        build_model("tiny", 40, 32, pretrained_path=str(tmp_path / "base"), overrides={"n_layer": 1})


def test_the_checkpoint_fingerprint_includes_the_pretrained_path(tmp_path):
    first, second = (small_config(tmp_path, f"model.pretrained_path={tmp_path / name}") for name in ("a", "b"))
    setup = resolve_skills(first)
    assert config_fingerprint(first, setup) != config_fingerprint(second, setup)


def test_graph_short_runs_use_their_own_learning_rate_and_warm_up(tmp_path):
    config = small_config(tmp_path, "graph.steps=40", "train.warmup_steps=30", "train.learning_rate=2e-3")
    short = short_run_config(config, [1.0, 0.0, 0.0])
    assert (short.train.steps, short.train.warmup_steps, short.train.lr_schedule) == (40, 0, "constant")
    assert short.train.learning_rate == 2e-3  # graph.learning_rate=0 inherits train.learning_rate
    tuned = short_run_config(
        small_config(tmp_path, "graph.steps=40", "graph.learning_rate=5e-4", "graph.warmup_steps=4",
                     "graph.lr_schedule=cosine"),
        [1.0, 0.0, 0.0],
    )  # fmt: skip
    assert (tuned.train.learning_rate, tuned.train.warmup_steps, tuned.train.lr_schedule) == (5e-4, 4, "cosine")
    with pytest.raises(ValueError, match="graph.warmup_steps=40"):
        load_config(None, ["graph.steps=40", "graph.warmup_steps=40"])


def test_keys_print_type_default_and_meaning(capsys):
    assert main(["keys"]) == 0
    output = capsys.readouterr().out
    assert "train.steps (int, default 300)\n    Optimizer steps in the whole run." in output
    assert "graph.threshold (float | None, default None)" in output


def test_invalid_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("train:\n  steps: 10\n  batch_size: [1, 2\n")
    with pytest.raises(ValueError, match=r"broken.yaml is not valid YAML at line \d+"):
        load_config(path)


def test_skillit_without_a_graph_says_how_to_get_one(tmp_path):
    from skillit_ray.train.local import run_local_training

    config = load_config(None, ["data.lego.num_variables=3", "train.steps=3", "mixture.num_rounds=1"])
    with pytest.raises(
        ValueError, match="needs a skills graph: learn one with `skillit-ray graph.*mixture.strategy=no_graph"
    ):
        run_local_training(config)


def test_per_position_losses_match_one_cross_entropy_over_the_whole_batch():
    """`next_token_losses` scores a few rows at a time: the same losses as torch's single call."""
    import torch

    from skillit_ray.train.model import IGNORED_LABEL, ROWS_PER_LOSS, next_token_losses

    generator = torch.Generator().manual_seed(0)
    rows = 2 * ROWS_PER_LOSS + 3
    logits = torch.randn(rows, 9, 31, generator=generator)
    labels = torch.randint(0, 31, (rows, 9), generator=generator)
    labels[5, 4:] = IGNORED_LABEL
    expected = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=IGNORED_LABEL, reduction="none"
    )
    losses = next_token_losses(logits, labels)
    assert losses.shape == (rows, 8)
    torch.testing.assert_close(losses, expected)
    assert (losses[5, 3:] == 0).all()
    torch.testing.assert_close(next_token_losses(logits, labels, reduction="sum"), expected.sum())
    assert next_token_losses(logits[:0], labels[:0]).shape == (0, 8)
