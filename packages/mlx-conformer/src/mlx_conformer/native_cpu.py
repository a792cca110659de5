"""The Conformer's native CPU kernels (`kernels/conformer_cpu.c`): building and calling them.

MLX's CPU backend runs elementwise work on one thread; the kernels run it on every core
between the BLAS's products (`cpu_attention`, `cpu_feed_forward`). The C source is compiled
once per user through `mlx_cpu_runtime.native`. They apply on the CPU to float32 arrays,
outside `mx.compile` (their inputs must be evaluated); `MLX_CONFORMER_NATIVE=off`, no C
compiler, or a BLAS other than OpenBLAS keep MLX's path, which gives the same numbers to
float32 rounding.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import threading
from collections.abc import Iterator
from importlib.resources import files

import mlx.core as mx
import numpy as np

F32 = ctypes.POINTER(ctypes.c_float)
_LOCK = threading.Lock()  # one native call at a time: some set the BLAS's thread count


def switched_off() -> bool:
    """`MLX_CONFORMER_NATIVE=off` (or 0): keep MLX's path on the CPU."""
    return os.environ.get("MLX_CONFORMER_NATIVE", "on").strip().lower() in ("off", "0")


@functools.cache
def library() -> tuple[ctypes.CDLL, ctypes.c_void_p, ctypes.CDLL] | None:
    """The compiled kernels, the BLAS's own sgemm and the BLAS (for its thread count), or
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
    source = (files(__package__) / "kernels" / "conformer_cpu.c").read_bytes()
    # -O3 and the float flags let the compiler vectorise the row loops' max and sum.
    flags = ("-O3", *native.FLAGS[1:], "-fno-math-errno", "-fno-trapping-math",
             "-fno-signed-zeros", "-fassociative-math", "-ffinite-math-only", "-pthread")  # fmt: skip
    kernels = native.load(source, "conformer-cpu", flags, pool=True)
    if kernels is None:
        return None
    return kernels, functions[0], blas


def usable(*arrays: mx.array) -> bool:
    """Whether a native kernel may run: the CPU, float32 arrays, switched on, built."""
    return (
        mx.default_device() == mx.cpu
        and all(a.dtype == mx.float32 for a in arrays)
        and not switched_off()
        and library() is not None
    )


def evaluated(arrays: dict[str, mx.array | None]) -> dict[str, np.ndarray] | None:
    """numpy views (no copy) of the arrays made row-contiguous and evaluated, None ones
    left out; None inside `mx.compile` (tracing: nothing can be evaluated)."""
    named = {name: mx.contiguous(a) for name, a in arrays.items() if a is not None}
    try:
        mx.eval(list(named.values()))
    except ValueError:
        return None
    return {name: np.asarray(a) for name, a in named.items()}


@contextlib.contextmanager
def blas_threads(count: int | None) -> Iterator[int]:
    """Under the lock, the BLAS's thread count (set to `count` meanwhile, if given)."""
    _, _, blas = library()
    with _LOCK:
        threads = blas.openblas_get_num_threads()
        if count is None:
            yield threads
            return
        blas.openblas_set_num_threads(count)
        try:
            yield threads
        finally:
            blas.openblas_set_num_threads(threads)
