"""The one thread that runs MLX.

MLX keeps its streams per thread: arrays made lazily on one thread (a model's weights,
compiled steps) cannot be evaluated on another. So the server loads its models and runs
every batch and streaming step on this thread, one computation at a time, which is also
what the hardware wants: two computations at once would share the same cores (or GPU)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class Compute:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlx")

    def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run `fn(*args)` on the MLX thread and wait (from any thread but that one)."""
        return self._pool.submit(fn, *args).result()

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run `fn(*args)` on the MLX thread without blocking the event loop."""
        return await asyncio.wrap_future(self._pool.submit(fn, *args))

    def close(self) -> None:
        """Free the thread's MLX streams (else MLX aborts at exit), then stop the thread."""
        import mlx.core as mx

        self._pool.submit(mx.clear_streams).result()
        self._pool.shutdown()
