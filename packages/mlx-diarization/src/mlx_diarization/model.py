"""`Sortformer`: NeMo's `SortformerEncLabelModel` forward, features -> speaker probabilities."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from mlx_conformer import Conformer

from .config import SortformerConfig
from .transformer import TransformerEncoder


class SpeakerHead(nn.Module):
    """NeMo's `SortformerModules` parameters used at inference (its names kept).

    `encoder_proj` maps the FastConformer width to the Transformer's (absent when equal);
    the sigmoid head is ReLU, linear, ReLU, linear (`forward_speaker_sigmoids`; dropout off).
    NeMo's `hidden_to_spks` is never called at inference and is not loaded.
    """

    def __init__(self, config: SortformerConfig) -> None:
        super().__init__()
        hidden = config.transformer.hidden_size
        if config.projected:
            self.encoder_proj = nn.Linear(config.encoder.d_model, hidden)
        self.first_hidden_to_hidden = nn.Linear(hidden, hidden)
        self.single_hidden_to_spks = nn.Linear(hidden, config.num_speakers)

    def project(self, x: mx.array) -> mx.array:
        return self.encoder_proj(x) if "encoder_proj" in self else x

    def __call__(self, hidden: mx.array) -> mx.array:
        x = self.first_hidden_to_hidden(nn.relu(hidden))
        return mx.sigmoid(self.single_hidden_to_spks(nn.relu(x)))


class Sortformer(nn.Module):
    """Features (B, T, F) -> per-frame speaker probabilities (B, T', num_speakers).

    Parameter names are NeMo's (`encoder.*`, `sortformer_modules.*`), but for the Transformer
    encoder's, which are mlx-seq2seq-decoder's (`transformer_encoder.layers.N.self_attn.query`,
    `...ffn.dense_in`); nemo-mlx-convert writes them so.
    """

    def __init__(self, config: SortformerConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Conformer(config.encoder)
        self.sortformer_modules = SpeakerHead(config)
        self.transformer_encoder = TransformerEncoder(config.transformer)
        self.eval()

    @classmethod
    def from_nemo(
        cls, nemo_config: Mapping[str, Any], weights: Mapping[str, mx.array]
    ) -> Sortformer:
        """A NeMo model config and the converted weights (MLX names), loaded strictly."""
        model = cls(SortformerConfig.from_nemo(nemo_config))
        model.load_weights(list(weights.items()), strict=True)
        return model

    def embeddings(
        self, x: mx.array, lengths: mx.array, pre_encoded: bool = False
    ) -> tuple[mx.array, mx.array]:
        """FastConformer states, projected (NeMo's `frontend_encoder`): features, or with
        `pre_encoded` the subsampled frames NeMo's streaming caches."""
        hidden, lengths = self.encoder(x, lengths, pre_encoded=pre_encoded)
        return self.sortformer_modules.project(hidden), lengths

    def probabilities(self, embeddings: mx.array, lengths: mx.array) -> mx.array:
        """NeMo's `forward_infer`: Transformer and sigmoid head; padded frames give 0."""
        hidden = self.transformer_encoder(embeddings, lengths)
        valid = mx.arange(embeddings.shape[1])[None, :] < lengths[:, None]
        return self.sortformer_modules(hidden) * valid[..., None]

    def __call__(self, features: mx.array, lengths: mx.array) -> mx.array:
        """Offline: the whole input at once (NeMo's `forward` when not `streaming_mode`)."""
        return self.probabilities(*self.embeddings(features, lengths))
