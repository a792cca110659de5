"""Importing this module runs `configure()`: `import mlx_cpu_runtime.auto` before `mlx`.

Every package of this project imports it first thing. When `mlx` was imported before it (a
reordered import, or a user's own `import mlx.core` ahead of ours), the optimised BLAS can no
longer be loaded: on Linux that is a RuntimeWarning naming the fix, not a silent ~40x slower
CPU backend (`MLX_CPU_BLAS=off` says the reference BLAS is wanted, and silences it).
"""

import warnings

from .runtime import blas_turned_off, configure

STATUS = configure()

if STATUS.too_late and STATUS.platform == "Linux" and not blas_turned_off():
    warnings.warn(
        "mlx was imported before mlx_cpu_runtime, so MLX's CPU backend keeps its reference "
        "BLAS (~40x slower end to end on Linux): import this project's packages (or "
        "mlx_cpu_runtime.auto) before mlx, or set MLX_CPU_BLAS=off to keep it quietly",
        RuntimeWarning,
        stacklevel=2,
    )
