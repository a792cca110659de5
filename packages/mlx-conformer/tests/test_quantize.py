"""`quantize_linears`: which layers it quantises, and that 8 bits stays closer than 4."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from mlx_conformer import Conformer, ConformerConfig, quantize_linears

CONFIG = {"feat_in": 80, "n_layers": 2, "d_model": 64, "n_heads": 4, "subsampling": "dw_striding",
          "subsampling_factor": 8, "subsampling_conv_channels": 32, "conv_kernel_size": 9}  # fmt: skip


def _encoder() -> Conformer:
    mx.random.seed(0)
    return Conformer(ConformerConfig.from_nemo(CONFIG))


def _output(encoder: Conformer, features: mx.array) -> np.ndarray:
    return np.array(encoder(features)[0])


def test_quantises_every_linear_with_a_whole_number_of_groups() -> None:
    encoder = _encoder()
    linears = [name for name, m in encoder.named_modules() if isinstance(m, nn.Linear)]
    # d_model 64: every linear's input (64, 256, or 32 x 10 subsampled features) is whole groups
    # except the subsampling projection (320 = 5 x 64: whole too).
    count = quantize_linears(encoder, 8)
    quantised = [name for name, m in encoder.named_modules() if isinstance(m, nn.QuantizedLinear)]
    assert count == len(quantised) == len(linears) > 0
    assert not any(isinstance(m, nn.Linear) for _, m in encoder.named_modules())
    # Convolutions are left alone.
    assert isinstance(encoder.layers[0].conv.pointwise_conv1, nn.Conv1d)


def test_skips_linears_whose_input_is_not_whole_groups() -> None:
    module = nn.Sequential(nn.Linear(80, 64), nn.Linear(64, 8))
    assert quantize_linears(module, 8) == 1
    assert isinstance(module.layers[0], nn.Linear)
    assert isinstance(module.layers[1], nn.QuantizedLinear)


def test_error_grows_as_bits_shrink() -> None:
    features = mx.random.normal((1, 400, 80), key=mx.random.key(1))
    reference = _output(_encoder(), features)
    errors = {}
    for bits in (8, 4):
        encoder = _encoder()
        quantize_linears(encoder, bits)
        out = _output(encoder, features)
        assert out.shape == reference.shape
        errors[bits] = np.linalg.norm(out - reference) / np.linalg.norm(reference)
    assert 0 < errors[8] < 0.05
    assert errors[8] < errors[4] < 1.0


def test_refuses_other_bit_widths() -> None:
    with pytest.raises(ValueError, match="4 or 8"):
        quantize_linears(_encoder(), 3)


def test_cpu_blas_path_equals_mlx_quantized_matmul() -> None:
    mx.random.seed(3)
    layer = nn.Linear(128, 96)
    module = nn.Sequential(layer)
    quantize_linears(module, 8)
    quantised = module.layers[0]
    x = mx.random.normal((40, 128))  # enough rows for the dequantise-and-BLAS path
    mlx_kernel = nn.QuantizedLinear.__call__(quantised, x)
    ours = quantised(x)
    assert isinstance(quantised, nn.QuantizedLinear)
    np.testing.assert_allclose(np.array(ours), np.array(mlx_kernel), rtol=1e-5, atol=1e-5)
    one_row = mx.random.normal((1, 128))  # a decoding step: MLX's own kernel
    np.testing.assert_array_equal(
        np.array(quantised(one_row)), np.array(nn.QuantizedLinear.__call__(quantised, one_row))
    )


def test_one_group_inputs_take_the_dequantised_product_on_cuda(monkeypatch) -> None:
    # MLX 0.32.4's CUDA quantised matmul is wrong for 64-feature inputs with several rows
    # (measured on an H200); there the layer must multiply by the dequantised weight.
    from mlx_conformer import quantize

    mx.random.seed(4)
    module = nn.Sequential(nn.Linear(64, 96), nn.Linear(128, 32))
    quantize_linears(module, 8)
    one_group, two_groups = module.layers
    x = mx.random.normal((5, 64))  # fewer rows than the CPU's BLAS threshold
    y = mx.random.normal((5, 128))

    def dequantised(layer: nn.QuantizedLinear, inputs: mx.array) -> np.ndarray:
        weight = mx.dequantize(layer["weight"], layer["scales"], layer["biases"], 64, 8)
        return np.array(mx.addmm(layer["bias"], inputs, weight.T))

    # The contract on every device: the product of the dequantised weight.
    np.testing.assert_allclose(
        np.array(one_group(x)), dequantised(one_group, x), rtol=1e-5, atol=1e-5
    )
    kernel = np.array(nn.QuantizedLinear.__call__(one_group, x))
    assert not np.array_equal(kernel, dequantised(one_group, x))  # the two routes differ
    simulated = not mx.cuda.is_available() or mx.default_device() == mx.cpu
    if simulated:  # the CUDA branch, taken on the CPU
        monkeypatch.setattr(quantize, "on_cpu", lambda: False)
        monkeypatch.setattr(quantize, "on_cuda", lambda: True)
    np.testing.assert_array_equal(np.array(one_group(x)), dequantised(one_group, x))
    np.testing.assert_array_equal(np.array(one_group(x[:1])), np.array(  # one row: MLX's kernel
        nn.QuantizedLinear.__call__(one_group, x[:1])))  # fmt: skip
    np.testing.assert_array_equal(  # two groups: MLX's kernel
        np.array(two_groups(y)), np.array(nn.QuantizedLinear.__call__(two_groups, y))
    )
    if simulated:  # Metal's branch: MLX's kernel (on CUDA it is the broken one, not repeatable)
        monkeypatch.setattr(quantize, "on_cuda", lambda: False)
        np.testing.assert_array_equal(np.array(one_group(x)), kernel)
