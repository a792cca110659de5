"""second_cpu_stream(): one per thread, on the CPU, and work on it runs."""

from __future__ import annotations

import threading

import mlx_cpu_runtime

import mlx.core as mx
import numpy as np


def test_one_second_stream_per_thread():
    mine = mlx_cpu_runtime.second_cpu_stream()
    assert mlx_cpu_runtime.second_cpu_stream() == mine
    assert mine.device == mx.cpu
    assert mine != mx.default_stream(mx.cpu)
    theirs = []
    worker = threading.Thread(target=lambda: theirs.append(mlx_cpu_runtime.second_cpu_stream()))
    worker.start()
    worker.join()
    assert theirs[0] != mine


def test_work_on_the_second_stream_joins_the_first():
    a = mx.arange(1000, dtype=mx.float32)
    with mx.stream(mlx_cpu_runtime.second_cpu_stream()):
        b = mx.exp(a / 1000.0)
    values = np.arange(1000, dtype=np.float64)
    np.testing.assert_allclose(np.array(a + b), values + np.exp(values / 1000.0), rtol=1e-6)
