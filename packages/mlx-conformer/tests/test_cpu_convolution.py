"""The native CPU convolution module (`cpu_convolution.py`): against float64 and MLX's path."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_conformer import ConformerConfig, cpu_convolution, native_cpu
from mlx_conformer.layers import ConvolutionModule

pytestmark = pytest.mark.skipif(
    mx.default_device() != mx.cpu, reason="the native pass is the CPU's convolution module"
)


def _module(norm: str = "batch_norm", context: list | None = None) -> ConvolutionModule:
    config = {"feat_in": 80, "n_layers": 1, "d_model": 48, "n_heads": 4, "conv_kernel_size": 9,
              "conv_norm_type": norm}  # fmt: skip
    if context is not None:
        config["conv_context_size"] = context
    mx.random.seed(5)
    module = ConvolutionModule(ConformerConfig.from_nemo(config))
    module.depthwise_conv.bias = mx.random.normal((48,))
    if norm == "batch_norm":  # eval-mode statistics away from their initial values
        module.batch_norm.running_mean = mx.random.normal((48,)) * 0.3
        module.batch_norm.running_var = mx.random.uniform(0.5, 2.0, (48,))
        module.batch_norm.weight = mx.random.normal((48,))
        module.batch_norm.bias = mx.random.normal((48,))
    module.eval()
    return module


def _reference(module: ConvolutionModule, x: np.ndarray, padded: np.ndarray) -> np.ndarray:
    """NeMo's ConformerConvolution in float64: pointwise, GLU, padded frames zeroed,
    depthwise over zero-padded time, batch norm (eval), SiLU, pointwise."""
    f64 = lambda a: np.array(a, dtype=np.float64)  # noqa: E731
    pw1, dw, pw2, bn = (module.pointwise_conv1, module.depthwise_conv, module.pointwise_conv2,
                        module.batch_norm)  # fmt: skip
    h = x @ f64(pw1.weight)[:, 0, :].T + f64(pw1.bias)
    d = h.shape[-1] // 2
    g = h[..., :d] / (1 + np.exp(-h[..., d:]))
    g[padded] = 0.0
    taps = dw.weight.shape[1]
    left, right = module.left, module.right
    g = np.pad(g, [(0, 0), (left, right), (0, 0)])
    w = f64(dw.weight)[:, :, 0]  # (channels, taps)
    y = sum(g[:, k : k + x.shape[1]] * w[:, k] for k in range(taps)) + f64(dw.bias)
    y = (y - f64(bn.running_mean)) / np.sqrt(f64(bn.running_var) + bn.eps) * f64(bn.weight)
    y = y + f64(bn.bias)
    y = y / (1 + np.exp(-y))
    return y @ f64(pw2.weight)[:, 0, :].T + f64(pw2.bias)


@pytest.mark.parametrize("context", [None, [8, 0]])  # symmetric; causal (NeMo's streaming)
def test_equals_float64(context) -> None:
    assert native_cpu.library() is not None, "the native library did not build"
    module = _module(context=context)
    x = mx.random.normal((2, 90, 48)) * 2
    padded = np.zeros((2, 90), dtype=bool)
    padded[1, 61:] = True
    assert cpu_convolution.usable(x, module.pointwise_conv1.weight)
    ours = np.array(module(x, mx.array(padded)))
    expected = _reference(module, np.array(x, dtype=np.float64), padded)
    valid = ~padded
    error = np.abs(ours[valid] - expected[valid]).max() / np.abs(expected[valid]).max()
    assert error < 2e-6


def test_module_equals_the_mlx_path(monkeypatch) -> None:
    module = _module()
    x = mx.random.normal((1, 120, 48))
    native = np.array(module(x, None))
    monkeypatch.setenv("MLX_CONFORMER_NATIVE", "off")
    np.testing.assert_allclose(native, np.array(module(x, None)), rtol=1e-5, atol=1e-5)


def test_mlx_path_for_layer_norm_few_rows_and_mx_compile(monkeypatch) -> None:
    x = mx.random.normal((1, 100, 48))
    module = _module()
    assert not cpu_convolution.usable(x[:, : cpu_convolution.MIN_ROWS - 1], x)
    compiled = mx.compile(lambda inputs: module(inputs, None))  # traced: MLX's path
    np.testing.assert_allclose(np.array(compiled(x)), np.array(module(x, None)), rtol=1e-5,
                               atol=1e-5)  # fmt: skip
    layer_norm = _module("layer_norm")  # its norm is not an affine map per channel: MLX's path
    default = np.array(layer_norm(x, None))
    monkeypatch.setenv("MLX_CONFORMER_NATIVE", "off")
    np.testing.assert_array_equal(default, np.array(layer_norm(x, None)))
