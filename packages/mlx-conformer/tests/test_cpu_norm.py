"""The native residual sum and layer norm (`cpu_norm.py`): against float64 and MLX's path."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from mlx_conformer import Conformer, ConformerConfig, cpu_norm, native_cpu
from mlx_conformer.layers import add_norm

pytestmark = pytest.mark.skipif(
    mx.default_device() != mx.cpu, reason="the native pass is the CPU's residual norm"
)


def _norm(width: int, seed: int) -> nn.LayerNorm:
    mx.random.seed(seed)
    norm = nn.LayerNorm(width)
    norm.weight = 1.0 + mx.random.normal((width,))  # a trained norm's scale and shift
    norm.bias = mx.random.normal((width,))
    return norm


def _float64(x: np.ndarray, norm: nn.LayerNorm) -> np.ndarray:
    x = x.astype(np.float64)
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    out = (x - mean) / np.sqrt(var + norm.eps) * np.array(norm.weight) + np.array(norm.bias)
    return out


@pytest.mark.parametrize("width", [96, 1024])
@pytest.mark.parametrize("scale", [0.5, 1.0])
def test_sum_exact_and_norm_to_float64(width: int, scale: float) -> None:
    assert native_cpu.library() is not None, "the native library did not build"
    norm = _norm(width, seed=width)
    rows = max(700, cpu_norm.MIN_ELEMENTS // width + 1)  # rows shared out to the threads
    x = mx.random.normal((1, rows, width)) * 4 + 3  # a mean far from 0, as a residual stream
    y = mx.random.normal((1, rows, width))
    assert cpu_norm.usable(x, norm)
    total, normed = cpu_norm.add_norm(x, y, scale, norm)
    assert mx.array_equal(total, x + scale * y)  # the sum rounds as MLX's
    expected = _float64(np.array(x + scale * y), norm)
    np.testing.assert_allclose(np.array(normed), expected, rtol=0, atol=2e-5)
    mlx_path = np.array(norm(x + scale * y))
    np.testing.assert_allclose(np.array(normed), mlx_path, rtol=0, atol=2e-5)


def test_without_y_and_without_the_sum() -> None:
    norm = _norm(128, seed=3)
    x = mx.random.normal((2, 300, 128))
    y = mx.random.normal((2, 300, 128))
    same, normed = cpu_norm.add_norm(x, None, 1.0, norm)
    assert same is x
    np.testing.assert_allclose(np.array(normed), _float64(np.array(x), norm), atol=2e-5)
    total, last = cpu_norm.add_norm(x, y, 0.5, norm, keep_sum=False)
    assert total is None
    np.testing.assert_allclose(np.array(last), _float64(np.array(x + 0.5 * y), norm), atol=2e-5)


def test_layer_helper_takes_mlx_path_when_small_switched_off_or_compiled(monkeypatch) -> None:
    norm = _norm(96, seed=5)
    small = mx.random.normal((1, 10, 96))
    assert not cpu_norm.usable(small, norm)
    total, normed = add_norm(small, small, 0.5, norm)
    assert mx.array_equal(total, small + 0.5 * small)
    assert mx.array_equal(normed, norm(small + 0.5 * small))
    big = mx.random.normal((1, 1000, 96))
    assert cpu_norm.usable(big, norm)
    compiled = mx.compile(lambda x: add_norm(x, x, 0.5, norm)[1])  # traced: no native pass
    assert mx.array_equal(compiled(big), norm(big + 0.5 * big))
    monkeypatch.setenv("MLX_CONFORMER_NATIVE", "off")
    assert not cpu_norm.usable(big, norm)


def test_encoder_equals_the_mlx_path(monkeypatch) -> None:
    """A whole encoder (a padded batch, so every layer's norms over rows of both items)
    with the native sums and norms against MLX's path for the same weights."""
    config = ConformerConfig.from_nemo({
        "feat_in": 80, "n_layers": 2, "d_model": 96, "n_heads": 4, "subsampling": "dw_striding",
        "subsampling_factor": 8, "subsampling_conv_channels": 32, "ff_expansion_factor": 4,
        "conv_kernel_size": 9, "xscaling": True, "untie_biases": True,
    })  # fmt: skip
    mx.random.seed(0)
    encoder = Conformer(config)
    for layer in encoder.layers:
        for norm in (layer.norm_feed_forward1, layer.norm_self_att, layer.norm_conv,
                     layer.norm_feed_forward2, layer.norm_out):  # fmt: skip
            norm.weight = 1.0 + 0.3 * mx.random.normal(norm.weight.shape)
            norm.bias = 0.3 * mx.random.normal(norm.bias.shape)
    features = mx.random.normal((2, 9000, 80))
    lengths = mx.array([9000, 6100])
    calls = []
    original = cpu_norm.add_norm
    monkeypatch.setattr(cpu_norm, "add_norm", lambda *a, **k: calls.append(1) or original(*a, **k))
    native, native_len = encoder(features, lengths)
    assert len(calls) == 2 * 5  # every norm of every layer
    monkeypatch.setenv("MLX_CONFORMER_NATIVE", "off")
    reference, reference_len = encoder(features, lengths)
    assert mx.array_equal(native_len, reference_len)
    for item, n in enumerate(np.array(reference_len).tolist()):
        np.testing.assert_allclose(
            np.array(native[item, :n]), np.array(reference[item, :n]), rtol=0, atol=1e-4
        )
