"""Process setup that makes MLX's CPU backend fast on Linux; a no-op elsewhere.

Four measured problems, all invisible on macOS:

- MLX's Linux CPU wheel links the reference (netlib) BLAS: a 1024x1024 float32 matmul is
  ~30x slower than with OpenBLAS. A BLAS loaded with global symbols before `mlx` is
  imported takes precedence, and MLX then calls it.
- glibc returns large freed blocks to the kernel (mmap / heap trimming), so each new MLX
  buffer is faulted in page by page again; in a VM a fused elementwise kernel over 12 MB
  ran 3x slower for it. Keeping freed memory in the heap (`mallopt`) removes that cost,
  as a caching allocator would; the price is that RSS does not shrink after a peak.

- OpenBLAS's sgemm packs the whole matrix even when the other side is one row, as in each
  step of a batch-1 decoder: its sgemv is ~5x faster there. A small `cblas_sgemm` compiled
  once (`gemv.py`) sends such products to sgemv and the rest to sgemm.

- MLX's CPU kernels (`mx.compile`) are built with no target flags: SSE2 loops on AVX2 or
  AVX-512 machines. A `g++` first on the process's PATH (`jit.py`) builds them for this
  machine, with no change to their results.

`configure()` does all four, once, and must run before `mlx` is imported; every package of
this project calls it first thing. Environment overrides, read at that moment:
`MLX_CPU_BLAS=off` or `MLX_CPU_BLAS=/path/to/libblas.so`, `MLX_CPU_MALLOC=off` and
`MLX_CPU_GEMV=off`, `MLX_CPU_JIT=off`.
`hint()` prints, once, what to install when no optimised BLAS was found.
`kernels_compiled()` says when MLX is about to compile its CPU kernels for a dtype (the
first run in it takes 10-30 s longer). `second_cpu_stream()` gives work for the second core.
"""

from .kernels import kernel_cache, kernels_compiled
from .runtime import RuntimeStatus, configure, find_blas, hint, status
from .streams import second_cpu_stream

__version__ = "0.1.0"

__all__ = [
    "RuntimeStatus",
    "configure",
    "find_blas",
    "hint",
    "kernel_cache",
    "kernels_compiled",
    "second_cpu_stream",
    "status",
]
