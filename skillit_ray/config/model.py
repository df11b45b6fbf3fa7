"""The `model` section: which causal LM trains, built from a named size or loaded from a local directory.

Role in the flow: config -> **model section** -> train (`train/model.py` builds it). No Ray, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from skillit_ray.config.loading import require


@dataclass
class ModelConfig:
    """The causal LM, built from a transformers config (no hub download)."""

    size: str = "tiny"
    """Named size from `skillit_ray.train.model.MODEL_SIZES` ("tiny", "small", "gpt2-124m", "gpt-neo-125m", ...)."""
    pretrained_path: str = ""
    """Local directory of a saved transformers model to start from (continual pre-training)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Extra transformers-config fields, e.g. {n_layer: 3}; {model_type: llama} builds the named size's
    shape (layers, heads, width) as another architecture (`skillit_ray.train.model.ARCHITECTURE_KEYS`)."""

    def validate(self) -> None:
        require(bool(self.size), "model.size must name a size from skillit_ray.train.model.MODEL_SIZES")
        require(
            not (self.pretrained_path and self.overrides),
            f"model.overrides={self.overrides} cannot apply to model.pretrained_path={self.pretrained_path!r}: the "
            "pretrained model's own config.json wins; remove model.overrides or model.pretrained_path",
        )
