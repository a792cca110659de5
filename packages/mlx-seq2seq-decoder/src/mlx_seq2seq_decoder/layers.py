"""The decoder block's parts: attention with a cache, feed-forward, token embedding."""

from __future__ import annotations

import math
from collections.abc import Callable

import mlx.core as mx
import mlx.nn as nn

_LN_EPS = 1e-5  # NeMo's transformer layer norms


def activation(name: str):
    return nn.relu if name == "relu" else nn.gelu


Kernel = Callable[[mx.array, mx.array, mx.array, float, "mx.array | None"], mx.array]


def fused_attention(
    q: mx.array, k: mx.array, v: mx.array, scale: float, mask: mx.array | None
) -> mx.array:
    return mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=mask)


class Attention(nn.Module):
    """Multi-head attention with NeMo's projection names (query/key/value/out).

    `kernel` computes softmax(q k^T * scale + mask) v; MLX's fused one unless a user of the
    layer brings its own (Sortformer's encoder brings mlx-conformer's CPU attention, which
    is faster over long inputs)."""

    def __init__(self, hidden_size: int, num_heads: int, kernel: Kernel = fused_attention) -> None:
        super().__init__()
        self._kernel = kernel
        self.num_heads = num_heads
        self.head_size = hidden_size // num_heads
        self.scale = 1.0 / math.sqrt(self.head_size)
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)

    def heads(self, x: mx.array) -> mx.array:
        """(B, L, D) -> (B, H, L, D/H)."""
        batch, length, _ = x.shape
        return x.reshape(batch, length, self.num_heads, self.head_size).transpose(0, 2, 1, 3)

    def project_memory(self, memory: mx.array) -> tuple[mx.array, mx.array]:
        """Keys and values of states that do not change (the encoder's), computed once."""
        return self.heads(self.key(memory)), self.heads(self.value(memory))

    def attend(
        self, x: mx.array, keys: mx.array, values: mx.array, mask: mx.array | None
    ) -> mx.array:
        """Queries from `x` (B, L, D) over (B, H, S, D/H) keys and values; additive mask."""
        batch, length, _ = x.shape
        q = self.heads(self.query(x))
        out = self._kernel(q, keys, values, self.scale, mask)
        return self.out(out.transpose(0, 2, 1, 3).reshape(batch, length, -1))


class FeedForward(nn.Module):
    def __init__(self, hidden_size: int, inner_size: int, act: str) -> None:
        super().__init__()
        self.dense_in = nn.Linear(hidden_size, inner_size)
        self.dense_out = nn.Linear(inner_size, hidden_size)
        self._act = activation(act)

    def __call__(self, x: mx.array) -> mx.array:
        return self.dense_out(self._act(self.dense_in(x)))


class Embedding(nn.Module):
    """Token embedding plus a position table, then a layer norm (NeMo's `TransformerEmbedding`).

    Learned or fixed, the positions are a lookup table: a fixed one starts as NeMo's
    sinusoids (sin on even, cos on odd channels, divided by sqrt(hidden_size)), and a
    converted model loads the checkpoint's own table over it.
    """

    def __init__(self, num_classes: int, hidden_size: int, max_length: int, learned: bool) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(num_classes, hidden_size)
        self.position_embedding = nn.Embedding(max_length, hidden_size)
        if not learned:
            self.position_embedding.weight = sinusoid_table(max_length, hidden_size)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=_LN_EPS)

    @property
    def max_length(self) -> int:
        return self.position_embedding.weight.shape[0]

    def __call__(self, ids: mx.array, positions: mx.array) -> mx.array:
        """ids and positions (B, L); searches stop before positions run past the table."""
        x = self.token_embedding(ids) + self.position_embedding(positions)
        return self.layer_norm(x)


def sinusoid_table(length: int, size: int) -> mx.array:
    """NeMo's `FixedPositionalEncoding` table, computed in float32 as torch does."""
    position = mx.arange(length, dtype=mx.float32)[:, None]
    div = mx.exp(mx.arange(0, size, 2, dtype=mx.float32) * (-math.log(10000.0) / size))
    angles = position * div
    table = mx.stack([mx.sin(angles), mx.cos(angles)], axis=-1).reshape(length, -1)[:, :size]
    return table / math.sqrt(size)
