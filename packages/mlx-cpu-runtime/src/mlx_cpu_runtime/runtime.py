"""Finding and loading an optimised BLAS, and tuning glibc's allocator, before MLX loads."""

from __future__ import annotations

import ctypes
import glob
import os
import platform
import sys
from dataclasses import dataclass
from typing import TextIO

from . import gemv, jit

# Shared libraries that export the standard `cblas_*` symbols, most preferred first.
# (numpy's and scipy's bundled OpenBLAS builds rename their symbols and cannot serve.)
_CANDIDATES = (
    "/usr/lib/*-linux-gnu/openblas-pthread/libblas.so.3",
    "/usr/lib/*-linux-gnu/libopenblas.so.0",
    "/usr/lib64/libopenblasp.so.0",
    "/usr/lib64/libopenblas.so.0",
    "/usr/lib/libopenblas.so.0",
    "/usr/lib/*-linux-gnu/libmkl_rt.so*",
    "/opt/intel/oneapi/mkl/latest/lib/intel64/libmkl_rt.so*",
    "/usr/lib/*-linux-gnu/blis-pthread/libblas.so.3",
    "/usr/lib/*-linux-gnu/libblis.so.4",
)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_BELOW = 1 << 30  # allocations under 1 GiB come from the heap, not fresh mmaps


@dataclass(frozen=True)
class RuntimeStatus:
    """What `configure()` did. `blas` is the loaded library's path, if any."""

    platform: str
    blas: str | None = None
    blas_reason: str = ""
    malloc_tuned: bool = False
    too_late: bool = False  # mlx was imported before configure() ran
    gemv: str | None = None  # the sgemm shim sending one-row products to sgemv (gemv.py)
    gemv_reason: str = ""
    jit: str | None = None  # the flags MLX's CPU kernels are compiled with (jit.py)
    jit_reason: str = ""

    @property
    def reference_blas(self) -> bool:
        """Linux with no optimised BLAS loaded: MLX calls its wheel's reference BLAS."""
        return self.platform == "Linux" and self.blas is None

    @property
    def needs_blas_hint(self) -> bool:
        """Linux, no optimised BLAS, and not by the user's choice: worth one hint."""
        return self.reference_blas and self.blas_reason == "not found"


_STATUS: RuntimeStatus | None = None


def find_blas() -> str | None:
    """Path of an installed BLAS exporting `cblas_sgemm`, or None."""
    for pattern in _CANDIDATES:
        for path in sorted(glob.glob(pattern)):
            if os.path.isfile(path):
                return path
    return None


def _load_blas(path: str) -> bool:
    try:
        library = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return False
    return hasattr(library, "cblas_sgemm")


def _tune_malloc() -> bool:
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # Some glibc versions cap the threshold (at 32 MiB); take the largest they accept.
    ok = any(libc.mallopt(_M_MMAP_THRESHOLD, size) == 1 for size in (_KEEP_BELOW, 32 << 20))
    return libc.mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1) == 1 and ok


def _switched_off(variable: str) -> bool:
    """An on/off setting (`MLX_CPU_MALLOC`, `MLX_CPU_GEMV`, `MLX_CPU_JIT`) set to off or 0."""
    return os.environ.get(variable, "on").strip().lower() in ("off", "0")


def blas_turned_off() -> bool:
    """`MLX_CPU_BLAS=off` (or 0, none, reference): the user wants MLX's reference BLAS."""
    return os.environ.get("MLX_CPU_BLAS", "auto").strip().lower() in (
        "off",
        "0",
        "none",
        "reference",
    )


def configure() -> RuntimeStatus:
    """Load an optimised BLAS, tune malloc, and have MLX compile its CPU kernels for this
    machine (`jit.py`) (Linux only, once per process)."""
    global _STATUS
    if _STATUS is not None:
        return _STATUS
    system = platform.system()
    if system != "Linux":
        _STATUS = RuntimeStatus(platform=system, blas_reason="not needed")
        return _STATUS
    # MLX looks for its compiler when it first compiles a kernel: never too late for that
    flags, flags_reason = (
        (None, "turned off by MLX_CPU_JIT") if _switched_off("MLX_CPU_JIT") else jit.install()
    )
    if "mlx.core" in sys.modules:
        _STATUS = RuntimeStatus(
            platform=system,
            blas_reason="mlx was imported first",
            too_late=True,
            jit=flags,
            jit_reason=flags_reason,
        )
        return _STATUS
    choice = os.environ.get("MLX_CPU_BLAS", "auto").strip()
    blas, reason = None, ""
    shim, shim_reason = None, "no optimised BLAS"
    if blas_turned_off():
        reason = "turned off by MLX_CPU_BLAS"
    else:
        path = find_blas() if choice.lower() in ("", "auto") else choice
        if path is None:
            reason = "not found"
        else:
            if _switched_off("MLX_CPU_GEMV"):
                shim, shim_reason = None, "turned off by MLX_CPU_GEMV"
            else:  # before the BLAS goes global, so that MLX's cblas_sgemm binds to it
                shim, shim_reason = gemv.install(path)
            if _load_blas(path):
                blas = path
            else:
                reason = f"{path} could not be loaded or has no cblas_sgemm"
    malloc = not _switched_off("MLX_CPU_MALLOC")
    _STATUS = RuntimeStatus(
        platform=system,
        blas=blas,
        blas_reason=reason,
        malloc_tuned=malloc and _tune_malloc(),
        gemv=shim,
        gemv_reason=shim_reason,
        jit=flags,
        jit_reason=flags_reason,
    )
    return _STATUS


_HINTED = False


def hint(program: str = "mlx-cpu-runtime", file: TextIO | None = None) -> bool:
    """Once per process, say on stderr what would make MLX's CPU backend fast here.

    Printed when no optimised BLAS was found (not when the user turned it off), or when
    `mlx` was imported before `configure()` could run. `MLX_CPU_BLAS_HINT=off` silences
    it. Returns whether it printed.
    """
    global _HINTED
    current = status()
    if _HINTED or os.environ.get("MLX_CPU_BLAS_HINT", "on").strip().lower() in ("off", "0"):
        return False
    if current.needs_blas_hint:
        message = ("no optimised BLAS found, so MLX's CPU backend runs its reference BLAS (~40x "
                   "slower end to end); install OpenBLAS (Debian/Ubuntu: apt install "
                   "libopenblas0-pthread; Fedora: dnf install openblas-threads) or set MLX_CPU_BLAS")  # fmt: skip
    elif current.too_late and current.platform == "Linux":
        message = ("mlx was imported before this package, so no optimised BLAS could be loaded; "
                   "import it first (or mlx_cpu_runtime.auto)")  # fmt: skip
    else:
        return False
    _HINTED = True
    print(f"{program}: hint: {message}", file=file or sys.stderr)
    return True


def status() -> RuntimeStatus:
    """The result of `configure()` (running it if nothing has yet)."""
    return _STATUS if _STATUS is not None else configure()
