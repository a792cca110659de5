"""Sinusoidal relative position tables, computed as NeMo's `RelPositionalEncoding` does."""

from __future__ import annotations

import math
from dataclasses import dataclass

import mlx.core as mx
import numpy as np

_BASE = 10000.0  # NeMo's INF_VAL doubles as the sinusoid base


def sinusoids(positions: np.ndarray, d_model: int) -> np.ndarray:
    """(len(positions), d_model) float32 table: sin on even, cos on odd features.

    Computed in float32 in NeMo's order (`positions * exp(2i * -ln(10000) / d)`), so the
    table agrees with NeMo's to about one ulp.
    """
    positions = np.asarray(positions, dtype=np.float32)[:, None]
    div_term = np.exp(
        np.arange(0, d_model, 2, dtype=np.float32) * np.float32(-(math.log(_BASE) / d_model))
    )
    angles = positions * div_term
    table = np.zeros((positions.shape[0], d_model), dtype=np.float32)
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles)
    return table


@dataclass(frozen=True)
class SymmetricPositions:
    """NeMo's table of relative positions L-1 ... -(L-1), kept as its two halves.

    `sin` and `cos` (L, d_model / 2) hold the sinusoid features of positions 0 ... L-1.
    sin is odd and cos even, so with W = linear_pos's weight the projected row of position
    -r is cos(r) W_cos - sin(r) W_sin where that of +r is cos(r) W_cos + sin(r) W_sin: two
    (L, d/2) x (d/2, d) products give all 2L - 1 rows, half the multiply-adds of projecting
    the interleaved (2L - 1, d) table as NeMo does.
    """

    sin: mx.array
    cos: mx.array

    @property
    def length(self) -> int:
        return self.sin.shape[0]

    def ascending_table(self) -> mx.array:
        """The interleaved (2L - 1, d_model) table of positions -(L-1) ... L-1."""
        positive = mx.stack([self.sin, self.cos], axis=-1).reshape(self.length, -1)
        negative = mx.stack([-self.sin, self.cos], axis=-1).reshape(self.length, -1)
        return mx.concatenate([negative[:0:-1], positive])


class RelativePositions:
    """Tables for relative positions L-1 ... -(L-1), grown on demand and cached.

    Every row depends on its position only, so the slice for length L equals NeMo's slice
    of its precomputed `pos_emb_max_len` table.
    """

    def __init__(self, d_model: int) -> None:
        self.d_model = d_model
        self._length = 0
        self._sin: mx.array | None = None
        self._cos: mx.array | None = None

    def __call__(self, length: int, dtype: mx.Dtype = mx.float32) -> SymmetricPositions:
        """Positions length-1 down to -(length-1), as their non-negative halves."""
        if length > self._length:
            size = max(length, 2 * self._length)
            table = sinusoids(np.arange(size), self.d_model)
            self._sin, self._cos = mx.array(table[:, 0::2]), mx.array(table[:, 1::2])
            self._length = size
        return SymmetricPositions(
            self._sin[:length].astype(dtype), self._cos[:length].astype(dtype)
        )


def local_positions(left: int, right: int, d_model: int) -> mx.array:
    """(left + right + 1, d_model): positions left down to -right, for local attention."""
    return mx.array(sinusoids(np.arange(left, -right - 1, -1), d_model))
