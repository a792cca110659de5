"""NeMo's `TransformerEncoder` (post- or pre-LN self-attention blocks) over padded frames.

The attention and feed-forward are mlx-seq2seq-decoder's, the same computation as NeMo's
`MultiHeadAttention` / `PositionWiseFF` that Canary's decoder uses; only the block (one
self-attention, no cross-attention, no cache) is the encoder's own. Its attention kernel is
mlx-conformer's (`fastmath.attention`): over a long input the softmax dominates, and on the
CPU that one runs it through a vectorised exp (MLX's SDPA there: ~2x its time).
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from mlx_conformer import fastmath
from mlx_seq2seq_decoder.layers import Attention, FeedForward

from .config import TransformerConfig

_LN_EPS = 1e-5
NEG_INF = -10000.0  # NeMo's additive mask value for padded keys (`form_attention_mask`)


class EncoderBlock(nn.Module):
    """NeMo's `TransformerEncoderBlock`: attention and feed-forward, each with a residual."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.pre_ln = config.pre_ln
        self.layer_norm_1 = nn.LayerNorm(d, eps=_LN_EPS)
        self.self_attn = Attention(d, config.num_heads, kernel=fastmath.attention)
        self.layer_norm_2 = nn.LayerNorm(d, eps=_LN_EPS)
        self.ffn = FeedForward(d, config.inner_size, config.hidden_act)

    def __call__(self, x: mx.array, mask: mx.array | None) -> mx.array:
        attn = self.self_attn
        if self.pre_ln:
            h = self.layer_norm_1(x)
            x = x + attn.attend(h, *attn.project_memory(h), mask)
            return x + self.ffn(self.layer_norm_2(x))
        x = self.layer_norm_1(x + attn.attend(x, *attn.project_memory(x), mask))
        return self.layer_norm_2(x + self.ffn(x))


class TransformerEncoder(nn.Module):
    """(B, T, D) states and valid lengths -> (B, T, D); padded keys masked as NeMo masks them."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.layers = [EncoderBlock(config) for _ in range(config.num_layers)]
        if config.final_layer_norm:
            self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=_LN_EPS)

    def __call__(self, x: mx.array, lengths: mx.array | None = None) -> mx.array:
        mask = None
        if lengths is not None and bool(mx.any(lengths < x.shape[1])):
            valid = mx.arange(x.shape[1])[None, :] < lengths[:, None]
            mask = mx.where(valid, 0.0, NEG_INF).astype(x.dtype)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, mask)
        if "final_layer_norm" in self:
            x = self.final_layer_norm(x)
        return x
