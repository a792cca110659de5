"""Attention on the CPU (relative-position and plain) as one native pass per block of queries.

MLX's CPU backend runs elementwise work on one thread: at T = 1500 (two minutes of audio
after 8x subsampling) a full-attention layer spends most of its time in single-threaded
passes over its (heads, T, T) scores (the bias, the mask, the max, the exp). Here
(`conformer_attention` of `kernels/conformer_cpu.c`, `native_cpu`) each block of 64 queries
gets its content and positional scores from the BLAS's sgemm, their softmax in one
vectorised pass while the block is in cache, and its output from a third sgemm; blocks are
shared out over the BLAS's thread count, with the BLAS itself held to one thread meanwhile.
No (T, T) tensor is ever made. With `lengths`, a block computes only its item's valid queries
and keys: a padded batch costs what its items' own lengths cost.

Used by `RelPositionAttention` (relative positions: offline inputs on the projections as
they come, `full_attention_rows`, the heads' biases added in the kernel and no head
transposes; a stream's chunks per head, `full_attention`) and `fastmath.attention` (plain
attention, a Transformer's) from `MIN_KEYS` keys on (below it MLX's fused passes are about
as fast and the forward stays one lazy graph), where `native_cpu.usable` allows.
"""

from __future__ import annotations

import ctypes

from mlx_cpu_runtime import native

import mlx.core as mx
import numpy as np

from . import native_cpu
from .native_cpu import F32
from .packing import PackedRows

MIN_KEYS = 128  # a layer (d_model 512, 8 heads): T = 96 level, 128 5.2 -> 4.1 ms, 200 9.5 -> 6.1 ms
ROWS = 64  # query rows per block: their scores (64 x K floats) stay in the core's L2


class _Attention(ctypes.Structure):
    """`attention_t` of kernels/conformer_cpu.c."""

    _fields_ = [
        ("sgemm", ctypes.c_void_p),
        *[(name, ctypes.c_int) for name in ("B", "H", "T", "K", "D", "R")],
        ("scale", ctypes.c_float),
        *[(name, F32) for name in ("qu", "qv", "k", "v", "pos", "key_bias")],
        ("key_bias_item", ctypes.c_long),
        ("keep", ctypes.POINTER(ctypes.c_uint8)),
        ("keep_item", ctypes.c_long),
        ("lengths", ctypes.POINTER(ctypes.c_int32)),
        ("out", F32),
        ("threads", ctypes.c_int),
        ("offsets", ctypes.POINTER(ctypes.c_int32)),
        *[(name, F32) for name in ("bias_u", "bias_v")],
    ]  # fmt: skip


def usable(*arrays: mx.array, keys: int) -> bool:
    """Whether the native pass applies: enough keys, and `native_cpu.usable`."""
    return keys >= MIN_KEYS and native_cpu.usable(*arrays)


def full_attention(
    q_u: mx.array,
    q_v: mx.array,
    k: mx.array,
    v: mx.array,
    positions: mx.array,
    scale: float,
    keep: mx.array | None,
    lengths: mx.array | None,
) -> mx.array | None:
    """(B, H, T, d_head) relative-position attention, or None inside `mx.compile`.

    q_u, q_v (B, H, T, d), k, v (B, H, K, d); `positions` (H, T + K - 1, d), the projected
    positions -(T - 1) ... K - 1 per head; `keep` (T, K) or (B or 1, T, K) boolean, keys
    in their own order; `lengths` (B,) valid frames (pairs beyond them masked)."""
    return _run(q_u, k, v, scale, q_v=q_v, positions=positions, keep=keep, lengths=lengths)


def full_attention_rows(
    q: mx.array,
    k: mx.array,
    v: mx.array,
    bias_u: mx.array,
    bias_v: mx.array,
    positions: mx.array,
    scale: float,
    keep: mx.array | None,
    lengths: mx.array | None,
    packed: PackedRows | None = None,
) -> mx.array | None:
    """`full_attention` on the projections as they come, or None inside `mx.compile`: q, k,
    v and the output (B, T, H * d_head), keys the T frames (no stream cache), the heads'
    biases `bias_u`, `bias_v` (H, d_head) added to the queries in the kernel: no head
    transposes, no (q + u), (q + v) tensors. `packed`: the items' frames are packed rows,
    q, k, v and the output (1, N, H * d_head), T the longest item's length (`positions` and
    `keep` for it)."""
    return _run(q, k, v, scale, positions=positions, keep=keep, lengths=lengths, packed=packed,
                biases=(bias_u, bias_v))  # fmt: skip


def plain_attention(
    q: mx.array, k: mx.array, v: mx.array, scale: float, key_bias: mx.array | None
) -> mx.array | None:
    """(B, H, T, d_head) softmax(q k^T * scale + key_bias) v, or None inside `mx.compile`;
    `key_bias` (B or 1, 1, 1, K) additive per key (a Transformer's padding mask) or None."""
    if key_bias is not None:
        key_bias = key_bias.reshape(key_bias.shape[0], -1)
    return _run(q, k, v, scale, key_bias=key_bias)


def _run(
    q: mx.array,
    k: mx.array,
    v: mx.array,
    scale: float,
    *,
    q_v: mx.array | None = None,
    positions: mx.array | None = None,
    keep: mx.array | None = None,
    lengths: mx.array | None = None,
    key_bias: mx.array | None = None,
    packed: PackedRows | None = None,
    biases: tuple[mx.array, mx.array] | None = None,
) -> mx.array | None:
    bias_u, bias_v = biases if biases is not None else (None, None)
    views = native_cpu.evaluated({
        "qu": q, "qv": q_v, "k": k, "v": v, "pos": positions, "key_bias": key_bias,
        "keep": None if keep is None else keep.astype(mx.uint8),
        "lengths": None if lengths is None else lengths.astype(mx.int32),
        "bias_u": bias_u, "bias_v": bias_v,
    })  # fmt: skip
    if views is None:  # inside mx.compile
        return None
    kernels, sgemm = native_cpu.library()
    out = np.empty(q.shape, dtype=np.float32)
    if biases is not None:  # frames of all heads: (B, T, H * d), keys the T frames
        (batch, time, _), (heads, d_head) = q.shape, bias_u.shape
        keys = time
    else:
        batch, heads, time, d_head = q.shape
        keys = k.shape[2]
    if packed is not None:  # frames of all heads (`biases`), packed
        batch, time = len(packed.offsets) - 1, packed.longest
        keys = time
    task = _Attention(sgemm, batch, heads, time, keys, d_head, ROWS, scale)
    if packed is not None:
        task.offsets = packed.offsets.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
    for name in ("qu", "qv", "k", "v", "pos", "key_bias", "bias_u", "bias_v"):
        if name in views:
            setattr(task, name, views[name].ctypes.data_as(F32))
    task.out = out.ctypes.data_as(F32)
    if "key_bias" in views and views["key_bias"].shape[0] > 1:
        task.key_bias_item = keys
    if "keep" in views:
        mask = views["keep"]
        task.keep = mask.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
        task.keep_item = time * keys if mask.ndim == 3 and mask.shape[0] > 1 else 0
    if "lengths" in views:
        task.lengths = views["lengths"].ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
    with native.blas_threads(1) as threads:  # each worker's products on its own core
        task.threads = threads
        failed = kernels.conformer_attention(ctypes.byref(task))
    if failed:
        raise MemoryError("attention: no memory for one block of scores")
    return mx.array(out)
