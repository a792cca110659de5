"""`Conformer`: NeMo's `ConformerEncoder` (FastConformer) for inference."""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn

from .config import ConformerConfig
from .layers import ConformerLayer
from .positional import RelativePositions, local_positions
from .subsampling import ConvSubsampling


class Conformer(nn.Module):
    """Features (B, T, feat_in) with lengths -> hidden states (B, T', d_model) with lengths.

    Parameter names are NeMo's (`pre_encode.conv.0.weight`, `layers.3.self_attn.linear_q.weight`,
    ...), with convolution weights channels-last; nemo-mlx-convert writes them so.
    """

    def __init__(self, config: ConformerConfig) -> None:
        super().__init__()
        self.config = config
        self.pre_encode = ConvSubsampling(config)
        self.layers = [ConformerLayer(config) for _ in range(config.n_layers)]
        if config.feat_out > 0:
            self.out_proj = nn.Linear(config.d_model, config.feat_out)
        self._xscale = math.sqrt(config.d_model) if config.xscaling else None
        self._positions = RelativePositions(config.d_model)
        if config.self_attention_model == "rel_pos_local_attn":
            self._local_positions = local_positions(*config.att_context, config.d_model)
        self.eval()

    @property
    def subsampling_factor(self) -> int:
        return self.config.subsampling_factor

    def __call__(
        self, features: mx.array, lengths: mx.array | None = None
    ) -> tuple[mx.array, mx.array]:
        """Encode a zero-padded batch; `lengths` are valid feature frames (default: all)."""
        batch, frames, _ = features.shape
        if lengths is None:
            lengths = mx.full((batch,), frames, dtype=mx.int32)
        x, lengths = self.pre_encode(features, lengths)
        if self._xscale is not None:
            x = x * self._xscale
        time = x.shape[1]
        if self.config.self_attention_model == "rel_pos_local_attn":
            pos_emb = self._local_positions.astype(x.dtype)
        else:
            pos_emb = self._positions(time, x.dtype)
        # One item, or no padding anywhere: skip all masking work.
        padded = batch > 1 and bool(mx.any(lengths < time))
        pad_mask = (mx.arange(time)[None, :] >= lengths[:, None]) if padded else None
        attention_lengths = lengths if padded else None
        for layer in self.layers:
            x = layer(x, pos_emb, attention_lengths, pad_mask)
        if "out_proj" in self:
            x = self.out_proj(x)
        return x, lengths
