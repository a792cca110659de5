"""Who spoke when: NVIDIA's Sortformer diarizers on MLX, from a repo id, `.nemo` or directory.

`load(model)` resolves and converts the model (cached) and gives mlx-diarization's `Diarizer`;
`render(turns, source, fmt)` writes its turns as RTTM, JSON or NeMo's lines. The `diarize`
command is `cli.main`.
"""

import mlx_cpu_runtime.auto  # noqa: F401  (must run before anything imports mlx)

from .formats import FORMATS, render
from .loading import DEFAULT_MODEL, DiarizeError, load

__version__ = "0.1.0"

__all__ = ["DEFAULT_MODEL", "FORMATS", "DiarizeError", "load", "render"]
