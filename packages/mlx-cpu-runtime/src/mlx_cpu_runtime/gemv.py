"""One-row and one-column float32 products through the BLAS's gemv instead of its gemm.

MLX's CPU backend sends every float32 matmul to `cblas_sgemm`. For a product with one row,
as in each step of a batch-1 decoder ((1, 1280) @ (1280, 2560) for an LSTM layer of
parakeet's prediction network), OpenBLAS's sgemm still packs the whole weight matrix
before multiplying: measured here 1.3-2.3 ms against 0.47-0.50 ms for its sgemv on the same
data. `gemv_shim.c` is a `cblas_sgemm` that sends such products (row-major, one row or one
column) to the BLAS's `cblas_sgemv` and all others to its `cblas_sgemm`. It is compiled
once with the system C compiler into a per-user cache (`native.py`), and loaded with
global symbols before the BLAS, so that MLX's `cblas_sgemm` resolves to it. No compiler,
or `MLX_CPU_GEMV=off`: MLX calls the BLAS's sgemm directly, as before.
"""

from __future__ import annotations

import ctypes
from importlib.resources import files
from pathlib import Path

from . import native

SOURCE = "gemv_shim.c"
_INIT = "mlx_cpu_runtime_gemv_init"


def build() -> tuple[Path | None, str]:
    """The compiled shim (`native.build`: once per source text, compiler and flags), or
    None and why not."""
    return native.build((files(__package__) / SOURCE).read_bytes(), "gemv")


def install(blas_path: str) -> tuple[str | None, str]:
    """Before the BLAS is loaded globally: load the shim globally, pointed at the BLAS's
    sgemm and sgemv. Returns the shim's path (None if not installed) and why not."""
    functions = native.blas_functions(blas_path)
    if functions is None:
        return None, f"{blas_path} has no cblas_sgemv"
    path, reason = build()
    if path is None:
        return None, reason
    try:
        shim = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        getattr(shim, _INIT)(*functions)
    except (OSError, AttributeError) as err:
        return None, f"{path} could not be loaded: {err}"
    return str(path), ""
