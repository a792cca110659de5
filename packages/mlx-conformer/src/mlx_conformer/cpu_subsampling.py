"""NeMo's `dw_striding` subsampling on the CPU on every core, up to its output projection.

In MLX's CPU backend the subsampling's first convolution, depthwise taps, masks and ReLUs run
on one thread; only its pointwise products reach the BLAS's threads (the 0.6b geometry,
256 channels: ~0.3 s per 60 s of audio, 1.23x NeMo's time in the Sortformer's profile).
`conformer_subsampling` (kernels/conformer_cpu.c, `native_cpu`) computes it per (item,
`chunk` output frames), every stage's rows that those frames read in its own scratch, on
the BLAS's thread count of workers, each worker's pointwise products by sgemm on its core.
The output projection stays an MLX `nn.Linear` (one product over all frames, on every
core, quantised or not).

Used by `ConvSubsampling` for `dw_striding`, plain or causal, from `MIN_FRAMES` output
frames in the batch on, where `native_cpu.usable` allows.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

from mlx_cpu_runtime import native

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from . import native_cpu
from .native_cpu import F32
from .subsampling_shape import output_length, stage_padding

if TYPE_CHECKING:
    from .subsampling import ConvSubsampling

MIN_FRAMES = 16
MAX_STAGES = 8  # the kernel's (factor 256; NVIDIA's checkpoints use 4, 8 or 16)
# a work item's first-stage rows, in floats (4 MB: larger products and fewer halo rows beat
# staying in L2: 0.6b geometry, 60 s, ~60 ms against ~100 ms at 0.5 MB)
CHUNK_VALUES = 1 << 20

I32 = ctypes.POINTER(ctypes.c_int32)


class _Subsampling(ctypes.Structure):
    """`subsampling_t` of kernels/conformer_cpu.c."""

    _fields_ = [
        ("sgemm", ctypes.c_void_p),
        *[(name, ctypes.c_int) for name in ("B", "T", "F", "C", "stages", "before", "chunk")],
        ("x", F32),
        *[(name, I32) for name in ("lengths", "times", "freqs")],
        *[(name, F32) for name in ("w0", "b0", "dw", "dw_bias", "pw", "pw_bias", "out")],
        ("threads", ctypes.c_int),
    ]  # fmt: skip


def _convolutions(sub: ConvSubsampling) -> list[nn.Conv2d]:
    return [layer for layer in sub.conv if isinstance(layer, nn.Conv2d)]


def usable(sub: ConvSubsampling, features: mx.array, out_frames: int) -> bool:
    """`dw_striding` (a one-channel convolution, then depthwise and pointwise pairs), enough
    output frames in the batch, and `native_cpu.usable` for the features and weights."""
    convs = _convolutions(sub)
    return (
        features.shape[0] * out_frames >= MIN_FRAMES
        and 1 <= sub.stages <= MAX_STAGES
        and len(convs) == 2 * sub.stages - 1
        and convs[0].weight.shape[-1] == 1
        and all(conv.groups == conv.weight.shape[0] for conv in convs[1::2])
        and all("bias" in conv for conv in convs)
        and native_cpu.usable(features, *(conv.weight for conv in convs))
    )


def chunk_frames(stages: int, channels: int, first_bins: int) -> int:
    """Output frames per work item: its first-stage rows (the frames' reach back through the
    stages) within `CHUNK_VALUES` floats, at least one frame."""
    reach = 2 ** (stages - 1)  # first-stage rows per output frame, besides the halo
    return max(1, CHUNK_VALUES // (first_bins * channels * reach))


def _stacked(arrays: list[mx.array]) -> mx.array:
    """The later stages' weights as one array (a placeholder when there is one stage)."""
    return mx.stack(arrays) if arrays else mx.zeros((1,))


def subsample(sub: ConvSubsampling, features: mx.array, lengths: mx.array) -> mx.array | None:
    """(B, T', C * F') of (B, T, F) `features` with their valid `lengths`: every stage
    masked, each frame's channels flattened major as NeMo flattens them, before the output
    projection; None inside `mx.compile`."""
    convs = _convolutions(sub)
    batch, time, bins = features.shape
    stages, channels = sub.stages, convs[0].weight.shape[0]
    times = [output_length(time, k, sub.causal) for k in range(stages + 1)]
    freqs = [output_length(bins, k, sub.causal) for k in range(stages + 1)]
    lengths = lengths.astype(mx.int32)
    taps = lambda conv: conv.weight.reshape(channels, 9).T  # noqa: E731  (9, C)
    views = native_cpu.evaluated({
        "x": features,
        "lengths": mx.stack([output_length(lengths, k, sub.causal) for k in range(stages + 1)],
                            axis=1).astype(mx.int32),
        "w0": taps(convs[0]), "b0": convs[0].bias,
        "dw": _stacked([taps(c) for c in convs[1::2]]),
        "dw_bias": _stacked([c.bias for c in convs[1::2]]),
        "pw": _stacked([c.weight.reshape(channels, channels) for c in convs[2::2]]),
        "pw_bias": _stacked([c.bias for c in convs[2::2]]),
    })  # fmt: skip
    if views is None:
        return None
    kernels, sgemm = native_cpu.library()
    out = np.empty((batch, times[-1], channels * freqs[-1]), dtype=np.float32)
    shape = np.array([times, freqs], dtype=np.int32)
    task = _Subsampling(sgemm, batch, time, bins, channels, stages,
                        stage_padding(sub.causal)[0], chunk_frames(stages, channels, freqs[1]))  # fmt: skip
    for name, view in views.items():
        setattr(task, name, view.ctypes.data_as(I32 if name == "lengths" else F32))
    task.times, task.freqs = shape[0].ctypes.data_as(I32), shape[1].ctypes.data_as(I32)
    task.out = out.ctypes.data_as(F32)
    with native.blas_threads(1) as threads:  # each worker's products on its own core
        task.threads = threads
        if kernels.conformer_subsampling(ctypes.byref(task)) != 0:
            raise MemoryError("the native subsampling found no memory for its scratch")
    return mx.array(out)
