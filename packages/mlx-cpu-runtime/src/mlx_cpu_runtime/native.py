"""Compiling a package's C source into a per-user cache, and the BLAS functions it calls.

The one place where this project's native code is built: `gemv.py`'s sgemm shim and
mlx-transducer's greedy loop (`cpu_greedy.py`) both come through `build`. A library is
compiled once per source text, compiler and flags (all three in its file name), with the
system C compiler (the one MLX's CPU backend itself needs for `mx.compile`), into
`$XDG_CACHE_HOME/mlx-cpu-runtime` (or ~/.cache, or the temp folder if neither is writable).
No compiler is a reason returned, not an error: callers keep their non-native path.
Kernels that share work out over threads take the one work pool, `parallel.c`, with their
source (`load(..., pool=True)`), and hold the BLAS to one thread meanwhile (`blas_threads`);
kernels that need exp in a vectorised loop take `vector_math.c` (`load(..., vector_math=True)`).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from importlib.resources import files
from pathlib import Path

# -O2 without -march=native: the library must run on any machine sharing the cache folder,
# and the hot loops are the BLAS's, which picks its own kernels for the CPU.
FLAGS = ("-O2", "-shared", "-fPIC")
_BLAS_LOCK = threading.Lock()  # one thread-count change at a time, process-wide


def cache_dir() -> Path:
    """Where compiled libraries are kept: `$XDG_CACHE_HOME/mlx-cpu-runtime` (or ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mlx-cpu-runtime"


def cache_folders() -> tuple[Path, Path]:
    """Where native files go, in order: `cache_dir()`, else the temp folder's (unwritable home)."""
    return cache_dir(), Path(tempfile.gettempdir()) / "mlx-cpu-runtime"


def compiler() -> str | None:
    """The C compiler: `$CC`, else cc, gcc or clang on the PATH."""
    return (
        os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    )


def cached(name: str, make: Callable[[Path], str]) -> tuple[Path | None, str]:
    """`name` (a file or a folder) in the first writable cache folder, made once: `make(path)`
    writes it at a private `path` beside its target and returns "" (or why it could not),
    and it is moved into place in one rename, so no process ever sees half of it."""
    for folder in cache_folders():
        target = folder / name
        if target.exists():
            return target, ""
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=folder) as work:  # a private name: atomic
                made = Path(work) / name
                reason = make(made)
                if reason:
                    return None, reason
                try:
                    os.replace(made, target)
                except OSError:  # a folder another process made first cannot be replaced
                    if not target.exists():
                        raise
            return target, ""
        except (OSError, subprocess.SubprocessError):
            continue  # an unwritable cache: try the next folder
    return None, "no writable cache folder"


def build(source: bytes, name: str, flags: tuple[str, ...] = FLAGS) -> tuple[Path | None, str]:
    """The shared library compiled from C `source` (made once per source text, compiler and
    flags, as `<name>-<digest>.so`), or None and why not."""
    cc = compiler()
    if cc is None:
        return None, "no C compiler (cc, gcc, clang or $CC)"
    key = source + b"\0" + cc.encode() + b"\0" + " ".join(flags).encode()
    digest = hashlib.sha256(key).hexdigest()[:16]

    def compile_to(library: Path) -> str:
        c_file = library.with_name(f"{name}.c")
        c_file.write_bytes(source)
        done = subprocess.run(
            [cc, *flags, "-o", str(library), str(c_file)], capture_output=True, timeout=120
        )
        if done.returncode != 0:
            return f"{cc} failed: {done.stderr.decode(errors='replace')[:200]}"
        return ""

    return cached(f"{name}-{digest}.so", compile_to)


def cores() -> int:
    """The cores this process may run on (its affinity where the OS says, else all): how
    many workers a native kernel without a BLAS to ask starts."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def blas_functions(blas_path: str) -> tuple[ctypes.c_void_p, ctypes.c_void_p] | None:
    """The addresses of a BLAS's own `cblas_sgemm` and `cblas_sgemv` (loaded locally, so
    not the gemv shim's `cblas_sgemm` that MLX binds to), or None if it has not both."""
    try:
        blas = ctypes.CDLL(blas_path, mode=ctypes.RTLD_LOCAL)
        sgemm, sgemv = blas.cblas_sgemm, blas.cblas_sgemv
    except (OSError, AttributeError):
        return None
    return ctypes.cast(sgemm, ctypes.c_void_p), ctypes.cast(sgemv, ctypes.c_void_p)


def load(
    source: bytes,
    name: str,
    flags: tuple[str, ...] = FLAGS,
    *,
    pool: bool = False,
    vector_math: bool = False,
) -> ctypes.CDLL | None:
    """`build`'s library loaded with local symbols, or None if it cannot be built or loaded
    (callers keep their non-native path). `pool`: the work pool (`parallel.c`:
    `parallel_items`, `parallel_rows`) goes in front of `source`; `vector_math`: the shared
    float helpers (`vector_math.c`: `CLONES`, `exp_clamped`)."""
    preludes = [part for part, wanted in (("parallel.c", pool), ("vector_math.c", vector_math))
                if wanted]  # fmt: skip
    source = b"\n".join([*((files(__package__) / p).read_bytes() for p in preludes), source])
    path, _ = build(source, name, flags)
    if path is None:
        return None
    try:
        return ctypes.CDLL(str(path), mode=ctypes.RTLD_LOCAL)
    except OSError:
        return None


def blas_path() -> str | None:
    """The optimised BLAS that native code calls: the one `configure()` loaded for MLX, else
    the one it would load (MLX imported first), unless turned off (`MLX_CPU_BLAS=off`)."""
    from . import runtime  # here, not at the top: runtime imports gemv, which imports this

    loaded = runtime.status().blas
    return loaded or (None if runtime.blas_turned_off() else runtime.find_blas())


@functools.cache
def blas_control() -> ctypes.CDLL | None:
    """The loaded BLAS, if its thread count can be set (OpenBLAS's
    `openblas_set_num_threads`), else None."""
    path = blas_path()
    if path is None:
        return None
    try:
        blas = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)  # the library MLX calls, not a copy
    except OSError:
        return None
    return blas if hasattr(blas, "openblas_set_num_threads") else None


@contextlib.contextmanager
def blas_threads(count: int | None) -> Iterator[int | None]:
    """Under one process-wide lock, the BLAS's thread count, set to `count` meanwhile if
    given; None (and nothing set) for a BLAS without thread control.

    A kernel that runs its own workers, each calling the BLAS, holds it to one thread so
    that the workers do not each start the BLAS's threads on the same cores; the lock keeps
    two such kernels from restoring each other's count."""
    blas = blas_control()
    if blas is None:
        yield None
        return
    with _BLAS_LOCK:
        threads = blas.openblas_get_num_threads()
        if count is None:
            yield threads
            return
        blas.openblas_set_num_threads(count)
        try:
            yield threads
        finally:
            blas.openblas_set_num_threads(threads)
