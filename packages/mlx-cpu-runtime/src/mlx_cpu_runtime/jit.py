"""MLX's CPU kernels compiled for this machine's vector instructions.

MLX's CPU backend builds each fused kernel (`mx.compile`) with `g++ -std=c++17 -O3 -Wall
-fPIC -shared` and, in the 0.32 Linux wheels, no target flags: on x86-64 its loops then use
SSE2, 4 floats at a time, where the machine has AVX2 (8) or AVX-512 (16). (MLX built for
AVX2 adds `-mavx2 -mfma` itself; the wheels are not.) MLX runs `g++` through the shell, so a
`g++` first on this process's `PATH` is the one it runs. `install()` puts one there that
adds `-march=native -ffp-contract=off` to MLX's kernel builds (a `.cpp` in its kernel cache,
`kernels.kernel_cache()`) and runs every other call unchanged:

- `-march=native`: the vector instructions of the machine that compiles (MLX's kernel cache
  is a folder of that machine's temp dir).
- `-ffp-contract=off`: no fused multiply-add the SSE2 build would not make, so a kernel
  computes bit for bit what it computed before; only faster. Measured here (2-core
  AVX-512 VM, idle; `fastmath` of mlx-conformer): exp over (8, 750, 750) 17.3 -> 8.9 ms,
  sigmoid over (750, 2048) 8.5 -> 6.3 ms, outputs identical.

Kernels already in the cache keep the flags they were built with (delete the folder to
rebuild them). The flags are tried once on a small source before the wrapper is made; if the
compiler refuses them nothing is installed. `MLX_CPU_JIT=off` turns this off.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from .native import cached

FLAGS = "-march=native -ffp-contract=off"
_WRAPPER = """#!/bin/sh
# mlx_cpu_runtime.jit: MLX's CPU kernel builds get {flags}; anything else runs as asked.
for arg in "$@"; do
  case "$arg" in
    */mlx/*/cpu/*.cpp) exec "{real}" {flags} "$@" ;;
  esac
done
exec "{real}" "$@"
"""


def install() -> tuple[str | None, str]:
    """Put the wrapper first on `PATH` (once per process). Returns the flags it adds (None
    if not installed) and why not."""
    # Without wrappers already on PATH (a child process inherits its parent's): the real one
    others = [f for f in os.environ.get("PATH", "").split(os.pathsep) if not _is_wrapper(f)]
    real = shutil.which("g++", path=os.pathsep.join(others))
    if real is None:
        return None, "no g++ (MLX cannot compile CPU kernels either)"
    # as found, not resolved: a symlink such as ccache's g++ works only under its own name
    real = os.path.abspath(real)
    folder = _wrapper_folder(real)
    if folder is None:
        return None, f"{real} does not accept {FLAGS}, or no writable cache folder"
    os.environ["PATH"] = os.pathsep.join([str(folder), *others])
    return FLAGS, ""


def _is_wrapper(folder: str) -> bool:
    """A folder holding one of these wrappers (made by `_wrapper_folder`)."""
    return Path(folder).name.startswith("jit-") and (Path(folder) / "g++").is_file()


def _wrapper_folder(real: str) -> Path | None:
    """The folder holding the wrapper for compiler `real`, made (and its flags tried) once."""
    script = _WRAPPER.format(real=real, flags=FLAGS)
    digest = hashlib.sha256((script + str(os.stat(real).st_mtime_ns)).encode()).hexdigest()[:16]

    def make(folder: Path) -> str:
        if not _accepts_flags(real, folder.parent):
            return f"{real} does not accept {FLAGS}"
        folder.mkdir()
        (folder / "g++").write_text(script)
        (folder / "g++").chmod(0o755)
        return ""

    return cached(f"jit-{digest}", make)[0]


def _accepts_flags(real: str, work: Path) -> bool:
    """Whether `real` builds a shared library with `FLAGS` (as MLX would call it), in `work`."""
    source, library = work / "probe.cpp", work / "probe.so"
    source.write_text('extern "C" void probe(float* x, int n) '
                      "{ for (int i = 0; i < n; ++i) x[i] = x[i] * 2.0f + 1.0f; }\n")  # fmt: skip
    done = subprocess.run(
        [real, "-std=c++17", "-O3", "-fPIC", "-shared", *FLAGS.split(), str(source),
         "-o", str(library)],
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    return done.returncode == 0 and library.is_file()
