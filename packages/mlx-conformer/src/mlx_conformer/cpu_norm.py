"""A module's residual sum and the next layer norm on the CPU as one native pass.

A FastConformer layer adds each module's output to its residual stream and normalises the
sum for the next module five times; on MLX's CPU backend each is a single-threaded pass
over (rows, d_model) (a round of 16 server clips, demo model: ~2.7 ms of a 13.6 ms layer).
`conformer_add_norm` (kernels/layer_norm_cpu.c, `native_cpu`) makes the sum and its norm in
one pass over rows shared out to every core. Same sum bit for bit, the norm to float32
rounding (the order of its sums).
"""

from __future__ import annotations

import ctypes

from mlx_cpu_runtime import native

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from . import native_cpu
from .native_cpu import F32

# Below it MLX's two passes cost no more than a native call's round trip (median of one
# sum and norm, 2 cores: 512 x 96 186 us both ways, 2606 x 96 0.49 against 0.61 ms,
# 2606 x 1024 2.7 against 7.4 ms).
MIN_ELEMENTS = 1 << 16


class _AddNorm(ctypes.Structure):
    """`add_norm_t` of kernels/layer_norm_cpu.c."""

    _fields_ = [
        *[(name, ctypes.c_int) for name in ("M", "D")],
        ("x", F32), ("y", F32), ("scale", ctypes.c_float), ("weight", F32), ("bias", F32),
        ("eps", ctypes.c_float), ("sum", F32), ("out", F32), ("threads", ctypes.c_int),
    ]  # fmt: skip


def usable(x: mx.array, norm: nn.Module) -> bool:
    """Enough values, an affine `nn.LayerNorm`, and `native_cpu.usable`."""
    return (
        x.size >= MIN_ELEMENTS
        and type(norm) is nn.LayerNorm
        and "weight" in norm
        and native_cpu.usable(x, norm.weight)
    )


def add_norm(
    x: mx.array, y: mx.array | None, scale: float, norm: nn.LayerNorm, keep_sum: bool = True
) -> tuple[mx.array | None, mx.array] | None:
    """(x + scale * y, norm(x + scale * y)) (y None: (x, norm(x))), or None inside
    `mx.compile`; the sum is None when not `keep_sum` (the layer's last norm)."""
    views = native_cpu.evaluated({
        "x": x, "y": y, "weight": norm.weight, "bias": norm.get("bias"),
    })  # fmt: skip
    if views is None:
        return None
    kernels, _ = native_cpu.library()
    rows, width = x.size // x.shape[-1], x.shape[-1]
    out = np.empty(x.shape, dtype=np.float32)
    total = np.empty(x.shape, dtype=np.float32) if keep_sum and y is not None else None
    task = _AddNorm(rows, width)
    for name, view in views.items():
        setattr(task, name, view.ctypes.data_as(F32))
    task.scale, task.eps, task.out = scale, norm.eps, out.ctypes.data_as(F32)
    if total is not None:
        task.sum = total.ctypes.data_as(F32)
    with native.blas_threads(None) as threads:
        task.threads = threads
        kernels.conformer_add_norm(ctypes.byref(task))
    if not keep_sum:
        return None, mx.array(out)
    return (mx.array(total) if total is not None else x), mx.array(out)
