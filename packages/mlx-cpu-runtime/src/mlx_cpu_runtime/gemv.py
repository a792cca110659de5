"""One-row and one-column float32 products through the BLAS's gemv instead of its gemm.

MLX's CPU backend sends every float32 matmul to `cblas_sgemm`. For a product with one row,
as in each step of a batch-1 decoder ((1, 1280) @ (1280, 2560) for an LSTM layer of
parakeet's prediction network), OpenBLAS's sgemm still packs the whole weight matrix
before multiplying: measured here 1.3-2.3 ms against 0.47-0.50 ms for its sgemv on the same
data. `gemv_shim.c` is a `cblas_sgemm` that sends such products (row-major, one row or one
column) to the BLAS's `cblas_sgemv` and all others to its `cblas_sgemm`. It is compiled
once with the system C compiler (which MLX's CPU backend itself needs for `mx.compile`)
into a per-user cache, and loaded with global symbols before the BLAS, so that MLX's
`cblas_sgemm` resolves to it. No compiler, or `MLX_CPU_GEMV=off`: MLX calls the BLAS's
sgemm directly, as before.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from importlib.resources import files
from pathlib import Path

SOURCE = "gemv_shim.c"
_INIT = "mlx_cpu_runtime_gemv_init"


def cache_dir() -> Path:
    """Where the compiled shim is kept: `$XDG_CACHE_HOME/mlx-cpu-runtime` (or ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mlx-cpu-runtime"


def _compiler() -> str | None:
    return (
        os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    )


def build() -> tuple[Path | None, str]:
    """The compiled shim (made once per source text and compiler), or None and why not."""
    source = (files(__package__) / SOURCE).read_bytes()
    compiler = _compiler()
    if compiler is None:
        return None, "no C compiler (cc, gcc, clang or $CC)"
    digest = hashlib.sha256(source + compiler.encode()).hexdigest()[:16]
    for folder in (cache_dir(), Path(tempfile.gettempdir()) / "mlx-cpu-runtime"):
        target = folder / f"gemv-{digest}.so"
        if target.is_file():
            return target, ""
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=folder) as work:  # a private name: atomic
                c_file, so_file = Path(work) / SOURCE, Path(work) / "gemv.so"
                c_file.write_bytes(source)
                done = subprocess.run(
                    [compiler, "-O2", "-shared", "-fPIC", "-o", str(so_file), str(c_file)],
                    capture_output=True,
                    timeout=120,
                )
                if done.returncode != 0:
                    return None, f"{compiler} failed: {done.stderr.decode(errors='replace')[:200]}"
                os.replace(so_file, target)
            return target, ""
        except (OSError, subprocess.SubprocessError):
            continue  # an unwritable cache: try the next folder
    return None, "no writable cache folder"


def install(blas_path: str) -> tuple[str | None, str]:
    """Before the BLAS is loaded globally: load the shim globally, pointed at the BLAS's
    sgemm and sgemv. Returns the shim's path (None if not installed) and why not."""
    try:
        blas = ctypes.CDLL(blas_path, mode=ctypes.RTLD_LOCAL)
        sgemm, sgemv = blas.cblas_sgemm, blas.cblas_sgemv
    except (OSError, AttributeError):
        return None, f"{blas_path} has no cblas_sgemv"
    path, reason = build()
    if path is None:
        return None, reason
    try:
        shim = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        getattr(shim, _INIT)(
            ctypes.cast(sgemm, ctypes.c_void_p), ctypes.cast(sgemv, ctypes.c_void_p)
        )
    except (OSError, AttributeError) as err:
        return None, f"{path} could not be loaded: {err}"
    return str(path), ""
