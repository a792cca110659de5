"""NeMo's `MultiLayerPerceptron` as the frame classifier: Linear layers per frame.

NeMo names its layers `layer0, layer1, ...` with the activations in the odd slots (they hold
no tensors), so a converted state dict's `decoder.layer<2i>.{weight,bias}` load as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import mlx.nn as nn

_KEYS = {"_target_", "hidden_size", "num_classes", "num_layers", "activation", "log_softmax",
         "channel_idx"}  # fmt: skip
_ACTIVATIONS = {"relu": nn.relu, "sigmoid": mx.sigmoid, "tanh": mx.tanh}  # getattr(torch, name)


@dataclass(frozen=True)
class MLPConfig:
    hidden_size: int
    num_classes: int
    num_layers: int = 1
    activation: str = "relu"
    log_softmax: bool = False

    @classmethod
    def from_nemo(cls, cfg: Mapping[str, Any], labels: int) -> MLPConfig:
        """Build from the model's `decoder` section; `num_classes: -1` means one per label,
        as NeMo's classification models fill it in."""
        target = str(cfg.get("_target_", "MultiLayerPerceptron")).rsplit(".", 1)[-1]
        if target != "MultiLayerPerceptron":
            raise ValueError(
                f"frame classifier {target!r} is not supported; supported: MultiLayerPerceptron"
            )
        unknown = sorted(set(cfg) - _KEYS)
        if unknown:
            raise ValueError(f"frame classifier config key {unknown[0]!r} is not supported")
        if cfg.get("channel_idx") is not None:
            raise ValueError("frame classifier channel_idx is not supported")
        activation = str(cfg.get("activation", "relu"))
        if activation not in _ACTIVATIONS:
            raise ValueError(f"frame classifier activation {activation!r} is not supported")
        classes = int(cfg.get("num_classes", -1))
        return cls(
            hidden_size=int(cfg["hidden_size"]),
            num_classes=labels if classes == -1 else classes,
            num_layers=int(cfg.get("num_layers", 2)),
            activation=activation,
            log_softmax=bool(cfg.get("log_softmax", True)),
        )


class FrameClassifier(nn.Module):
    """(B, T, hidden) -> (B, T, classes): logits, or log-probabilities with `log_softmax`."""

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        for i in range(config.num_layers):
            out = config.num_classes if i == config.num_layers - 1 else config.hidden_size
            setattr(self, f"layer{2 * i}", nn.Linear(config.hidden_size, out))

    def __call__(self, x: mx.array) -> mx.array:
        for i in range(self.config.num_layers):
            if i:
                x = _ACTIVATIONS[self.config.activation](x)
            x = getattr(self, f"layer{2 * i}")(x)
        return nn.log_softmax(x, axis=-1) if self.config.log_softmax else x
