"""Attention on the CPU (relative-position and plain) as one native pass per block of queries.

MLX's CPU backend runs elementwise work on one thread: at T = 1500 (two minutes of audio
after 8x subsampling) a full-attention layer spends most of its time in single-threaded
passes over its (heads, T, T) scores (the bias, the mask, the max, the exp). Here
(`kernels/attention_cpu.c`, compiled once per user through `mlx_cpu_runtime.native`)
each block of 64 queries gets its content and positional scores from the BLAS's sgemm,
their softmax in one vectorised pass while the block is in cache, and its output from a
third sgemm; blocks are shared out over the BLAS's thread count, with the BLAS itself
held to one thread meanwhile. No (T, T) tensor is ever made.

Used by `RelPositionAttention._full` (relative positions) and `fastmath.attention` (plain
attention, a Transformer's) on the CPU for float32 inputs from `MIN_KEYS` keys on (below it
MLX's fused passes are about as fast and the forward stays one lazy graph), outside
`mx.compile` (the inputs must be evaluated here). `MLX_CONFORMER_NATIVE=off`, no C
compiler, or a BLAS other than OpenBLAS keep the MLX path, which gives the same numbers
to float32 rounding.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from importlib.resources import files

import mlx.core as mx
import numpy as np

MIN_KEYS = 128  # a layer (d_model 512, 8 heads): T = 96 level, 128 5.2 -> 4.1 ms, 200 9.5 -> 6.1 ms
ROWS = 64  # query rows per block: their scores (64 x K floats) stay in the core's L2
_F32 = ctypes.POINTER(ctypes.c_float)
_LOCK = threading.Lock()  # one native pass at a time: each sets the BLAS's thread count


class _Attention(ctypes.Structure):
    """`attention_t` of attention_cpu.c."""

    _fields_ = [
        ("sgemm", ctypes.c_void_p),
        *[(name, ctypes.c_int) for name in ("B", "H", "T", "K", "D", "R")],
        ("scale", ctypes.c_float),
        *[(name, _F32) for name in ("qu", "qv", "k", "v", "pos", "key_bias")],
        ("key_bias_item", ctypes.c_long),
        ("keep", ctypes.POINTER(ctypes.c_uint8)),
        ("keep_item", ctypes.c_long),
        ("lengths", ctypes.POINTER(ctypes.c_int32)),
        ("out", _F32),
        ("threads", ctypes.c_int),
    ]  # fmt: skip


def switched_off() -> bool:
    """`MLX_CONFORMER_NATIVE=off` (or 0): keep MLX's attention on the CPU."""
    return os.environ.get("MLX_CONFORMER_NATIVE", "on").strip().lower() in ("off", "0")


@functools.cache
def _library() -> tuple[ctypes.CDLL, ctypes.c_void_p, ctypes.CDLL] | None:
    """The compiled kernel, the BLAS's own sgemm and the BLAS (for its thread count), or
    None: no mlx-cpu-runtime BLAS, not OpenBLAS (no thread control), no C compiler."""
    try:
        from mlx_cpu_runtime import native
    except ImportError:
        return None
    path = native.blas_path()
    functions = native.blas_functions(path) if path else None
    if functions is None:
        return None
    blas = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)  # the loaded library, when MLX calls it
    if not hasattr(blas, "openblas_set_num_threads"):
        return None
    source = (files(__package__) / "kernels" / "attention_cpu.c").read_bytes()
    # -O3 and the float flags let the compiler vectorise the row loops' max and sum.
    flags = ("-O3", *native.FLAGS[1:], "-fno-math-errno", "-fno-trapping-math",
             "-fno-signed-zeros", "-fassociative-math", "-ffinite-math-only", "-pthread")  # fmt: skip
    library = native.load(source, "conformer-attention", flags)
    if library is None:
        return None
    library.conformer_attention.argtypes = [ctypes.POINTER(_Attention)]
    library.conformer_attention.restype = ctypes.c_int
    return library, functions[0], blas


def usable(*arrays: mx.array, keys: int) -> bool:
    """Whether the native pass applies: the CPU, float32, enough keys, library there."""
    return (
        keys >= MIN_KEYS
        and mx.default_device() == mx.cpu
        and all(a.dtype == mx.float32 for a in arrays)
        and not switched_off()
        and _library() is not None
    )


def _view(array: mx.array) -> np.ndarray:
    """A numpy view of an evaluated, row-contiguous MLX array (no copy)."""
    return np.asarray(array)


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
) -> mx.array | None:
    named = {"qu": q, "qv": q_v, "k": k, "v": v, "pos": positions, "key_bias": key_bias,
             "keep": None if keep is None else keep.astype(mx.uint8),
             "lengths": None if lengths is None else lengths.astype(mx.int32)}  # fmt: skip
    named = {name: mx.contiguous(a) for name, a in named.items() if a is not None}
    try:
        mx.eval(list(named.values()))
    except ValueError:  # tracing (mx.compile, vmap): arrays have no values yet
        return None
    views = {name: _view(a) for name, a in named.items()}
    library, sgemm, blas = _library()
    batch, heads, time, d_head = q.shape
    keys = k.shape[2]
    out = np.empty((batch, heads, time, d_head), dtype=np.float32)
    task = _Attention(sgemm, batch, heads, time, keys, d_head, ROWS, scale)
    for name in ("qu", "qv", "k", "v", "pos", "key_bias"):
        if name in views:
            setattr(task, name, views[name].ctypes.data_as(_F32))
    task.out = out.ctypes.data_as(_F32)
    if "key_bias" in views and views["key_bias"].shape[0] > 1:
        task.key_bias_item = keys
    if "keep" in views:
        mask = views["keep"]
        task.keep = mask.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
        task.keep_item = time * keys if mask.ndim == 3 and mask.shape[0] > 1 else 0
    if "lengths" in views:
        task.lengths = views["lengths"].ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
    with _LOCK:
        threads = blas.openblas_get_num_threads()
        task.threads = threads
        blas.openblas_set_num_threads(1)  # each worker's products on its own core
        try:
            failed = library.conformer_attention(ctypes.byref(task))
        finally:
            blas.openblas_set_num_threads(threads)
    if failed:
        raise MemoryError("attention: no memory for one block of scores")
    return mx.array(out)
