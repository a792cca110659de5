"""`Transducer`: prediction network + joint, with NeMo's top-level names `decoder` and `joint`."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from .config import TransducerConfig
from .greedy import greedy_decode
from .hypothesis import Hypothesis
from .networks import JointNetwork, PredictionNetwork


class Transducer(nn.Module):
    """The decoding half of an RNNT / TDT model. Weights load from a converted model's
    `decoder.*` and `joint.*` tensors (`decoder.prediction.dec_rnn.lstm.0.Wx`, `joint.enc.weight`, ...)."""

    def __init__(self, config: TransducerConfig) -> None:
        super().__init__()
        self.config = config
        self.decoder = PredictionNetwork(config)
        self.joint = JointNetwork(config)

    def greedy(self, encoder_output: mx.array, lengths: mx.array | None = None) -> list[Hypothesis]:
        """NeMo's `greedy_batch` decoding of (B, T, D) encoder frames with valid lengths."""
        return greedy_decode(
            self.decoder,
            self.joint,
            encoder_output,
            lengths,
            blank_id=self.config.blank_id,
            durations=self.config.durations,
            max_symbols=self.config.max_symbols,
        )
