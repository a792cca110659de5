"""A second MLX CPU stream per thread: work for the second core.

MLX's CPU backend runs each elementwise operation, FFT and reduction on the thread of its
stream, one at a time; only the BLAS uses several cores. Independent work put on a second
stream (its own thread) runs beside the first: the front end's STFT blocks two at a time
(600 s of audio: 0.227 -> 0.173 s, idle, 2 cores). Not everything gains: attention heads
halved over two streams ran no faster in whole forwards. MLX streams belong to the thread
that made them, hence one per thread. `mlx` is imported here only when the stream is first asked for.
"""

from __future__ import annotations

import threading
from typing import Any

_LOCAL = threading.local()


def second_cpu_stream() -> Any:
    """This thread's second MLX CPU stream (an `mx.Stream`), made on first use."""
    stream = getattr(_LOCAL, "stream", None)
    if stream is None:
        import mlx.core as mx

        stream = _LOCAL.stream = mx.new_stream(mx.cpu)
    return stream
