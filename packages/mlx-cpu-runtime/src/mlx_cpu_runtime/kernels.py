"""Saying so when MLX's CPU backend is about to compile its kernels, instead of a silent wait.

MLX's CPU backend turns each fused kernel (`mx.compile`) into a shared library with the
system's C++ compiler the first time it meets it, and keeps the library in
`<temp dir>/mlx/<version>/cpu`. A model's first run in a dtype therefore takes 10-30 s
longer (measured: 11 s for the bundled demo model in float16 on 2 cores); later runs load
the libraries. A marker file left in that directory after a successful run tells the next
run that the kernels are there (it goes when the directory goes, e.g. at reboot).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path


def kernel_cache() -> Path | None:
    """Where MLX keeps its compiled CPU kernels (None if MLX is not installed)."""
    try:
        version = metadata.version("mlx")
    except metadata.PackageNotFoundError:
        return None
    return Path(tempfile.gettempdir()) / "mlx" / version / "cpu"


@contextmanager
def kernels_compiled(
    dtype: object, program: str, *, cpu: bool | None = None, notify: bool = True
) -> Iterator[None]:
    """Around a model's run on the CPU in `dtype` (a name or an MLX dtype): when this
    program has not run in that dtype since MLX's kernel cache was made, say on stderr that
    the kernels are being compiled; after a run that succeeds, leave the marker. `cpu`:
    whether the run is on the CPU (default: MLX's default device, when mlx is loaded; this
    package never imports it). Does nothing off the CPU."""
    if cpu is None:
        mx = sys.modules.get("mlx.core")
        cpu = mx is not None and mx.default_device() == mx.cpu
    name = str(dtype).rsplit(".", 1)[-1]  # "float32" from mlx.core.float32
    cache = kernel_cache() if cpu else None
    marker = cache / f".{program}-{name}-compiled" if cache is not None else None
    if marker is not None and notify and not marker.exists():
        print(f"{program}: first run in {name} with this MLX: its CPU kernels are being "
              f"compiled (once, 10-30 s; kept in {cache})", file=sys.stderr)  # fmt: skip
    yield
    if marker is not None:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        except OSError:  # a read-only temp dir: the message shows again next time
            pass
