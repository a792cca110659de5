"""The ConvASR encoder's two hot spots on the CPU, written for speed: the depthwise
convolution and each sub-block's elementwise end. Channels-first (batch, channels, time).

MLX's grouped convolution is slow on the CPU (~40x this), and so is a sum of the kernel's
shifted taps, even fused: a per-channel weight broadcast over time sends MLX's fused loop
down its strided, scalar path (~1 ns per tap and value). Here the time axis is cut into
blocks of `BLOCK` outputs, and each block is a small matmul of the input blocks it reads with
a banded (Toeplitz) matrix of the channel's weights: ~8x faster than the taps for
MarbleNet's kernels (11-29, dilation 1-2, stride 1-2), equal to them within float32 rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import mlx.core as mx
import mlx.nn as nn
import numpy as np

ACTIVATIONS: dict[str, Callable[[mx.array], mx.array]] = {  # as NeMo's activation_registry
    "identity": lambda x: x,
    "hardtanh": nn.hard_tanh,
    "relu": nn.relu,
    "selu": nn.selu,
    "swish": nn.silu,
    "silu": nn.silu,
    "gelu": nn.gelu,
}
BLOCK = 16  # outputs per matmul row: the fastest of 8-64 for every MarbleNet layer


@cache
def _band(kernel: int, stride: int, dilation: int, parts: int) -> tuple[mx.array, mx.array]:
    """Which tap sits at (input frame i, output frame j) of a block: (parts * width, BLOCK)
    tap indices, and where one sits at all (i = j * stride + tap * dilation)."""
    offset = np.arange(parts * BLOCK * stride)[:, None] - np.arange(BLOCK)[None, :] * stride
    tap = offset // dilation
    valid = (offset >= 0) & (offset % dilation == 0) & (tap < kernel)
    return mx.array(np.where(valid, tap, 0)), mx.array(valid)


def depthwise(
    x: mx.array, keep: mx.array | int, weight: mx.array, stride: int, dilation: int, padding: int
) -> mx.array:
    """x (B, C, T), zeroed where `keep` (B, 1, T) is 0 (or past the first `keep` frames, an
    int: one pass fewer) and padded by `padding` frames each side, convolved per channel with
    weight (C, kernel, 1): (B, C, T')."""
    batch, channels, time = x.shape
    kernel = weight.shape[1]
    span = dilation * (kernel - 1) + 1
    frames = (time + 2 * padding - span) // stride + 1
    width = BLOCK * stride  # input frames per block of outputs
    blocks = -(-frames // BLOCK)
    parts = -(-((BLOCK - 1) * stride + span) // width)  # input blocks one output block reads
    total = (blocks + parts - 1) * width
    source = x[..., :keep] if isinstance(keep, int) else x * keep
    after = total - source.shape[-1] - padding
    padded = mx.pad(source, [(0, 0), (0, 0), (padding, max(after, 0))])[..., :total]
    rows = padded.reshape(batch, channels, blocks + parts - 1, width)
    taps, valid = _band(kernel, stride, dilation, parts)
    band = mx.where(valid, weight[:, :, 0][:, taps], 0.0).reshape(channels, parts, width, BLOCK)
    out = rows[:, :, :blocks] @ band[:, 0]
    for part in range(1, parts):
        out = mx.addmm(out, rows[:, :, part : part + blocks], band[:, part])
    return out.reshape(batch, channels, blocks * BLOCK)[..., :frames]


@cache
def epilogue(activation: str, residual: str | None) -> Callable[..., mx.array]:
    """The end of a sub-block: `(y, keep, shift[, r, keep_r, shift_r]) -> out`.

    `y` is a convolution's output with its batch norm's scale already in the weights, `keep`
    the frames NeMo's masking zeroes in its input (a pointwise convolution's output frames
    are its input's), `shift` the batch norm's offset; the residual branch `r` alike.
    `residual`: None, "add" or "max" (NeMo's residual_mode; "stride_add" adds).

    Not `mx.compile`d: `keep` and `shift` broadcast over y, which puts MLX's fused loop on its
    strided, scalar path, and when y's buffer is donated to the output that path ran ~8x
    slower than MLX's plain broadcasting ops (20 vs 2.5 ms on (1, 128, 30000)). Plain ops:
    the encoder on 600 s 194 -> 136 ms, the same numbers."""
    act = ACTIVATIONS[activation]

    def plain(y: mx.array, keep: mx.array, shift: mx.array) -> mx.array:
        return act(y * keep + shift)

    def combined(
        y: mx.array,
        keep: mx.array,
        shift: mx.array,
        r: mx.array,
        keep_r: mx.array,
        shift_r: mx.array,
    ) -> mx.array:
        main, branch = y * keep + shift, r * keep_r + shift_r
        return act(mx.maximum(main, branch) if residual == "max" else main + branch)

    return plain if residual is None else combined
