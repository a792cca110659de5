"""Sinusoidal relative position tables, computed as NeMo's `RelPositionalEncoding` does."""

from __future__ import annotations

import math

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


class RelativePositions:
    """Tables for relative positions L-1 ... -(L-1), grown on demand and cached.

    Every row depends on its position only, so the slice for length L equals NeMo's slice
    of its precomputed `pos_emb_max_len` table.
    """

    def __init__(self, d_model: int) -> None:
        self.d_model = d_model
        self._length = 0
        self._table: mx.array | None = None

    def __call__(self, length: int, dtype: mx.Dtype = mx.float32) -> mx.array:
        """(2 * length - 1, d_model): positions length-1 down to -(length-1)."""
        if length > self._length:
            size = max(length, 2 * self._length)
            self._table = mx.array(sinusoids(np.arange(size - 1, -size, -1), self.d_model))
            self._length = size
        start = self._length - length
        return self._table[start : start + 2 * length - 1].astype(dtype)


def local_positions(left: int, right: int, d_model: int) -> mx.array:
    """(left + right + 1, d_model): positions left down to -right, for local attention."""
    return mx.array(sinusoids(np.arange(left, -right - 1, -1), d_model))
