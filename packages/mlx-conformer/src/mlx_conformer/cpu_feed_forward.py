"""The Conformer's feed-forward module on the CPU with its SiLU on every core.

linear1, SiLU, linear2: MLX's CPU backend runs the products on the BLAS's threads and the
SiLU on one thread, over a (T, 4 d_model) hidden state: at T = 750, d_model 1024 the SiLU
took about a third of the module's time. `conformer_feed_forward` (kernels/conformer_cpu.c,
`native_cpu`) makes the same two products through the BLAS's sgemm and runs the bias and
SiLU between them on the BLAS's thread count of workers.

Used by `FeedForward` from `MIN_ROWS` rows on, for float (not quantised) linear layers,
where `native_cpu.usable` allows.
"""

from __future__ import annotations

import ctypes

from mlx_cpu_runtime import native

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from . import native_cpu
from .native_cpu import F32

MIN_ROWS = 64


class _FeedForward(ctypes.Structure):
    """`feed_forward_t` of kernels/conformer_cpu.c."""

    _fields_ = [
        ("sgemm", ctypes.c_void_p),
        *[(name, ctypes.c_int) for name in ("M", "D", "F")],
        *[(name, F32) for name in ("x", "w1", "b1", "w2", "b2", "hidden", "out")],
        ("threads", ctypes.c_int),
        ("T", ctypes.c_int),
        ("lengths", ctypes.POINTER(ctypes.c_int32)),
        ("packed", F32),
    ]  # fmt: skip


def usable(x: mx.array, linear1: nn.Module, linear2: nn.Module) -> bool:
    """Enough rows, two float `nn.Linear` layers, and `native_cpu.usable`."""
    return (
        x.size // x.shape[-1] >= MIN_ROWS
        and type(linear1) is nn.Linear
        and type(linear2) is nn.Linear
        and native_cpu.usable(x, linear1.weight, linear2.weight)
    )


def feed_forward(
    x: mx.array, linear1: nn.Linear, linear2: nn.Linear, lengths: mx.array | None = None
) -> mx.array | None:
    """linear2(silu(linear1(x))) for x (..., D), or None inside `mx.compile`. With `lengths`
    (B,) for x (B, T, D), only each item's valid frames are computed (a padded batch costs
    its items' own lengths); its padded frames come out as zeros."""
    views = native_cpu.evaluated({
        "x": x, "w1": linear1.weight, "b1": linear1.get("bias"),
        "w2": linear2.weight, "b2": linear2.get("bias"),
        "lengths": None if lengths is None or x.ndim != 3 else lengths.astype(mx.int32),
    })  # fmt: skip
    if views is None:
        return None
    kernels, sgemm = native_cpu.library()
    rows, width, hidden_width = x.size // x.shape[-1], x.shape[-1], linear1.weight.shape[0]
    hidden = np.empty((rows, hidden_width), dtype=np.float32)
    out = np.empty((rows, width), dtype=np.float32)
    task = _FeedForward(sgemm, rows, width, hidden_width)
    for name, view in views.items():
        if name != "lengths":
            setattr(task, name, view.ctypes.data_as(F32))
    if "lengths" in views:
        packed = np.empty((rows, width), dtype=np.float32)
        task.T, task.packed = x.shape[1], packed.ctypes.data_as(F32)
        task.lengths = views["lengths"].ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
    task.hidden, task.out = hidden.ctypes.data_as(F32), out.ctypes.data_as(F32)
    with native.blas_threads(None) as threads:
        task.threads = threads
        kernels.conformer_feed_forward(ctypes.byref(task))
    return mx.array(out).reshape(x.shape)
