"""The Conformer's native CPU kernels (`kernels/*.c`): building and calling them.

MLX's CPU backend runs elementwise work on one thread; the kernels run it on every core
between the BLAS's products (`cpu_attention`, `cpu_feed_forward`, `cpu_norm`). The C source is compiled
once per user through `mlx_cpu_runtime.native`. They apply on the CPU to float32 arrays,
outside `mx.compile` (their inputs must be evaluated); `MLX_CONFORMER_NATIVE=off`, no C
compiler, or a BLAS other than OpenBLAS keep MLX's path, which gives the same numbers to
float32 rounding.
"""

from __future__ import annotations

import ctypes
import functools
import os
from importlib.resources import files

import mlx.core as mx
import numpy as np

F32 = ctypes.POINTER(ctypes.c_float)
KERNEL_SOURCES = ("conformer_cpu.c", "layer_norm_cpu.c")  # one library, in this order


def switched_off() -> bool:
    """`MLX_CONFORMER_NATIVE=off` (or 0): keep MLX's path on the CPU."""
    return os.environ.get("MLX_CONFORMER_NATIVE", "on").strip().lower() in ("off", "0")


@functools.cache
def library() -> tuple[ctypes.CDLL, ctypes.c_void_p] | None:
    """The compiled kernels and the BLAS's own sgemm, or None: no mlx-cpu-runtime BLAS, not
    OpenBLAS (no thread control: `mlx_cpu_runtime.native.blas_threads`), no C compiler."""
    try:
        from mlx_cpu_runtime import native
    except ImportError:
        return None
    path = native.blas_path()
    functions = native.blas_functions(path) if path else None
    if functions is None:
        return None
    if native.blas_control() is None:
        return None
    kernels = files(__package__) / "kernels"
    source = b"\n".join((kernels / name).read_bytes() for name in KERNEL_SOURCES)
    # -O3 and the float flags let the compiler vectorise the row loops' max and sum.
    flags = ("-O3", *native.FLAGS[1:], "-fno-math-errno", "-fno-trapping-math",
             "-fno-signed-zeros", "-fassociative-math", "-ffinite-math-only", "-pthread")  # fmt: skip
    library = native.load(source, "conformer-cpu", flags, pool=True, vector_math=True)
    if library is None:
        return None
    return library, functions[0]


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
    named = {name: a for name, a in arrays.items() if a is not None}
    try:
        mx.eval(list(named.values()))
    except ValueError:
        return None
    views = {name: np.asarray(a) for name, a in named.items()}
    for name, view in views.items():  # a copy only for strided views (`mx.contiguous`
        if not view.flags.c_contiguous:  # on every input cost ~70 us a call)
            copy = mx.contiguous(named[name])
            mx.eval(copy)
            views[name] = np.asarray(copy)
    return views
