"""The `model` section: which causal LM trains, built from a named size or loaded from a hub id or a directory.

Role in the flow: config -> **model section** -> train (`train/model.py` builds it). No Ray, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from skillit_ray.config.loading import require


@dataclass
class ModelConfig:
    """The causal LM: fresh weights of a named size, or a pretrained checkpoint by hub id or directory."""

    size: str = "tiny"
    """Named size from `skillit_ray.train.model.MODEL_SIZES` ("tiny", "small", "gpt2-124m", "gpt-neo-125m", ...);
    ignored when `name_or_path` is set (the checkpoint's config.json wins)."""
    name_or_path: str = ""
    """A Hugging Face hub id ("Qwen/Qwen2.5-0.5B", "EleutherAI/gpt-neo-125M") or a local `save_pretrained`
    directory to start from. A hub id is fetched once, before the workers start, into `model.cache_dir`
    (or the default Hugging Face cache); its own tokenizer reads the data unless `data.tokenizer_path` is set."""
    revision: str = "main"
    """Branch, tag or commit of a hub id; the run pins it to the commit it resolved to (a resume reads the same
    weights)."""
    cache_dir: str = ""
    """Hugging Face cache directory for hub ids; empty uses the default (`HF_HUB_CACHE` / `HF_HOME`)."""
    pretrained_path: str = ""
    """Local directory of a saved transformers model (the older name of `model.name_or_path`, kept working)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Extra transformers-config fields, e.g. {n_layer: 3}; {model_type: llama} builds the named size's
    shape (layers, heads, width) as another architecture (`skillit_ray.train.model.ARCHITECTURE_KEYS`)."""

    def validate(self) -> None:
        require(bool(self.size), "model.size must name a size from skillit_ray.train.model.MODEL_SIZES")
        require(
            not (self.pretrained_path and self.name_or_path),
            f"model.pretrained_path={self.pretrained_path!r} and model.name_or_path={self.name_or_path!r} are both "
            "set; keep model.name_or_path only",
        )
        require(
            not (self.checkpoint and self.overrides),
            f"model.overrides={self.overrides} cannot apply to model.{self.checkpoint_key}={self.checkpoint!r}: the "
            f"pretrained model's own config.json wins; remove model.overrides or model.{self.checkpoint_key}",
        )
        require(bool(self.revision), "model.revision must name a branch, tag or commit (default: main)")

    @property
    def checkpoint(self) -> str:
        """The pretrained model to start from (hub id or directory), "" for fresh weights of `size`."""
        return self.name_or_path or self.pretrained_path

    @property
    def checkpoint_key(self) -> str:
        """The key that named it, for messages."""
        return "pretrained_path" if self.pretrained_path else "name_or_path"
