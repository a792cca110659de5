"""The Conformer's convolution module on the CPU with its elementwise work on every core.

Between its two pointwise products the module runs the GLU, the depthwise convolution, the
batch norm and SiLU: in MLX's CPU backend four single-threaded passes (~60% of the module's
time at T = 1500, d_model 512). `conformer_convolution` (kernels/conformer_cpu.c,
`native_cpu`) makes the two products through the BLAS's sgemm and runs the rest in two
vectorised passes on the BLAS's thread count of workers.

Used by `ConvolutionModule` offline (no stream cache) with a batch norm, from `MIN_ROWS`
rows on, where `native_cpu.usable` allows.
"""

from __future__ import annotations

import ctypes

from mlx_cpu_runtime import native

import mlx.core as mx
import numpy as np

from . import native_cpu
from .native_cpu import F32
from .packing import PackedRows

MIN_ROWS = 64


class _Convolution(ctypes.Structure):
    """`convolution_t` of kernels/conformer_cpu.c."""

    _fields_ = [
        ("sgemm", ctypes.c_void_p),
        *[(name, ctypes.c_int) for name in ("B", "T", "D", "taps", "left")],
        *[(name, F32) for name in ("x", "w1", "b1", "dw", "dw_bias", "scale", "shift", "w2", "b2")],
        ("padded", ctypes.POINTER(ctypes.c_uint8)),
        ("offsets", ctypes.POINTER(ctypes.c_int32)),
        *[(name, F32) for name in ("hidden", "gated", "act", "out")],
        ("threads", ctypes.c_int),
    ]  # fmt: skip


def usable(x: mx.array, *weights: mx.array) -> bool:
    """Enough rows and `native_cpu.usable` for the input and the weights."""
    return x.size // x.shape[-1] >= MIN_ROWS and native_cpu.usable(x, *weights)


def convolution(
    x: mx.array,
    pad_mask: mx.array | None,
    pointwise1: tuple[mx.array, mx.array | None],
    depthwise: tuple[mx.array, mx.array, int],
    norm: tuple[mx.array, mx.array],
    pointwise2: tuple[mx.array, mx.array | None],
    packed: PackedRows | None = None,
) -> mx.array | None:
    """The module's output for x (B, T, D), or None inside `mx.compile`.

    `pointwise1` (2D, D) weight and bias; `depthwise` (taps, D) weight, (D,) bias and the
    taps before each frame; `norm` the batch norm's (D,) scale and shift; `pointwise2`
    (D, D) weight and bias; `pad_mask` (B, T) true on padded frames (their GLU is zeroed).
    `packed`: x (1, N, D) holds the items' frames as packed rows (`packing`), each item
    convolved over its own frames only."""
    (w1, b1), (dw, dw_bias, left), (scale, shift), (w2, b2) = (
        pointwise1, depthwise, norm, pointwise2
    )  # fmt: skip
    views = native_cpu.evaluated({
        "x": x, "w1": w1, "b1": b1, "dw": dw, "dw_bias": dw_bias, "scale": scale,
        "shift": shift, "w2": w2, "b2": b2,
        "padded": None if pad_mask is None else pad_mask.astype(mx.uint8),
    })  # fmt: skip
    if views is None:
        return None
    kernels, sgemm = native_cpu.library()
    batch, time, width = x.shape
    rows = batch * time
    scratch = {name: np.empty((rows, size), dtype=np.float32)
               for name, size in (("hidden", 2 * width), ("gated", width), ("act", width),
                                  ("out", width))}  # fmt: skip
    task = _Convolution(sgemm, batch, time, width, dw.shape[0], left)
    if packed is not None:
        task.B = len(packed.offsets) - 1
        task.offsets = packed.offsets.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
    for name, view in {**views, **scratch}.items():
        if name == "padded":
            task.padded = view.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
        else:
            setattr(task, name, view.ctypes.data_as(F32))
    with native.blas_threads(None) as threads:
        task.threads = threads
        kernels.conformer_convolution(ctypes.byref(task))
    return mx.array(scratch["out"]).reshape(x.shape)
