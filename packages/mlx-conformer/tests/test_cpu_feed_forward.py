"""The native CPU feed-forward (`cpu_feed_forward.py`): against float64 and the MLX path."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from mlx_conformer import cpu_feed_forward, native_cpu, quantize_linears
from mlx_conformer.layers import FeedForward

pytestmark = pytest.mark.skipif(
    mx.default_device() != mx.cpu, reason="the native pass is the CPU's feed-forward"
)


def _module(bias: bool, seed: int) -> FeedForward:
    mx.random.seed(seed)
    module = FeedForward(64, 256, use_bias=bias)
    if bias:  # nn.Linear starts biases small and uniform: make them matter
        module.linear1.bias = mx.random.normal((256,))
        module.linear2.bias = mx.random.normal((64,))
    return module


@pytest.mark.parametrize("bias", [True, False])
def test_equals_float64(bias: bool) -> None:
    assert native_cpu.library() is not None, "the native library did not build"
    module = _module(bias, seed=1)
    x = mx.random.normal((3, 70, 64)) * 3  # SiLU's negative side and its large arguments
    ours = cpu_feed_forward.feed_forward(x, module.linear1, module.linear2)
    w1, w2 = (np.array(m.weight, dtype=np.float64) for m in (module.linear1, module.linear2))
    h = np.array(x, dtype=np.float64) @ w1.T
    if bias:
        h += np.array(module.linear1.bias)
    expected = (h / (1 + np.exp(-h))) @ w2.T
    if bias:
        expected += np.array(module.linear2.bias)
    assert ours.shape == x.shape
    error = np.abs(np.array(ours) - expected).max() / np.abs(expected).max()
    assert error < 2e-6


@pytest.mark.parametrize("bias", [True, False])
def test_padded_frames_are_never_read(bias: bool) -> None:
    # With lengths, each item costs its own frames: its valid rows equal the unpadded
    # module's, its padded rows (NaN here, as garbage could be) come out as zeros.
    module = _module(bias, seed=4)
    x = mx.random.normal((3, 90, 64)) * 3
    lengths = [90, 41, 0]
    garbage = np.array(x)
    garbage[1, 41:] = np.nan
    garbage[2] = np.nan
    ours = np.array(
        cpu_feed_forward.feed_forward(
            mx.array(garbage), module.linear1, module.linear2, mx.array(lengths)
        )
    )
    whole = np.array(cpu_feed_forward.feed_forward(x, module.linear1, module.linear2))
    assert np.isfinite(ours).all()
    for item, n in enumerate(lengths):
        np.testing.assert_allclose(ours[item, :n], whole[item, :n], rtol=1e-6, atol=1e-6)
        assert (ours[item, n:] == 0).all()


def test_module_equals_the_mlx_path(monkeypatch) -> None:
    module = _module(True, seed=2)
    x = mx.random.normal((2, cpu_feed_forward.MIN_ROWS, 64))
    assert cpu_feed_forward.usable(x, module.linear1, module.linear2)
    native = np.array(module(x))
    monkeypatch.setenv("MLX_CONFORMER_NATIVE", "off")
    assert not cpu_feed_forward.usable(x, module.linear1, module.linear2)
    np.testing.assert_allclose(native, np.array(module(x)), rtol=1e-5, atol=1e-5)


def test_mlx_path_for_few_rows_quantised_layers_and_mx_compile() -> None:
    module = _module(True, seed=3)
    few = mx.zeros((1, cpu_feed_forward.MIN_ROWS - 1, 64))
    assert not cpu_feed_forward.usable(few, module.linear1, module.linear2)
    x = mx.random.normal((1, 100, 64))
    eager = np.array(module(x))
    compiled = mx.compile(module)  # traced: the native pass steps aside
    np.testing.assert_allclose(np.array(compiled(x)), eager, rtol=1e-5, atol=1e-5)
    quantize_linears(module, 8)
    assert isinstance(module.linear1, nn.QuantizedLinear)
    assert not cpu_feed_forward.usable(x, module.linear1, module.linear2)
