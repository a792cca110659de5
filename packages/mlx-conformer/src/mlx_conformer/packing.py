"""A padded batch as packed rows: only the items' valid frames, one after another.

On the CPU every row costs its arithmetic, and a batch of clips of different lengths is
mostly padding in its shorter items (16 clips of 2-20 s in two batches of 8: ~24% of the
rows). The native feed-forward and attention kernels already skip padded frames; the layer
norms, the attention's projections, the convolution module and the residual sums did not.
Packed, the layers run over (1, N, D), N the valid frames of all items, and the two parts
that mix frames over time take the items' boundaries (`offsets`): the native attention
(each item attends over its own frames) and the native convolution module (each item
convolved with zeros beyond its own ends), which is what the padded batch computes on its
valid frames. Padded frames come back as zeros, which no decoder reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import numpy as np


@dataclass(frozen=True)
class PackedRows:
    """Where each item's frames are: rows offsets[b] .. offsets[b + 1] - 1 of the packed
    (1, N, D); `longest` the padded batch's frame count."""

    offsets: np.ndarray  # (B + 1,) int32
    longest: int
    rows: mx.array  # (N,) the padded batch's (B * T) row of each packed row

    @classmethod
    def of(cls, lengths: np.ndarray, longest: int) -> PackedRows:
        lengths = np.clip(np.asarray(lengths, dtype=np.int64), 0, longest)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        rows = np.concatenate(
            [b * longest + np.arange(n, dtype=np.int32) for b, n in enumerate(lengths)]
        )
        return cls(offsets, longest, mx.array(rows.astype(np.int32)))

    def pack(self, x: mx.array) -> mx.array:
        """(B, T, D) -> (1, N, D): the valid frames."""
        return mx.take(x.reshape(-1, x.shape[-1]), self.rows, axis=0)[None]

    def unpack(self, x: mx.array) -> mx.array:
        """(1, N, D) -> (B, T, D), zeros on padded frames."""
        batch, width = len(self.offsets) - 1, x.shape[-1]
        out = mx.zeros((batch * self.longest, width), dtype=x.dtype)
        return out.at[self.rows].add(x[0]).reshape(batch, self.longest, width)
