"""The native CPU subsampling (`cpu_subsampling.py`): against float64 and MLX's path."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from mlx_conformer import ConformerConfig, cpu_subsampling, native_cpu
from mlx_conformer.subsampling import ConvSubsampling, output_length, stage_padding

pytestmark = pytest.mark.skipif(
    mx.default_device() != mx.cpu, reason="the native pass is the CPU's subsampling"
)


def _subsampling(channels: int, factor: int, causal: bool, feat_in: int = 80,
                 kind: str = "dw_striding") -> ConvSubsampling:  # fmt: skip
    config = ConformerConfig.from_nemo({
        "feat_in": feat_in, "n_layers": 1, "d_model": 40, "n_heads": 4, "subsampling": kind,
        "subsampling_factor": factor, "subsampling_conv_channels": channels,
        "causal_downsampling": causal,
    })  # fmt: skip
    mx.random.seed(factor + channels + causal)
    sub = ConvSubsampling(config)
    for layer in sub.conv:  # biases away from zero, so that masked frames would show
        if isinstance(layer, nn.Conv2d):
            layer.bias = mx.random.normal(layer.bias.shape)
    mx.eval(sub.parameters())
    return sub


def _reference(sub: ConvSubsampling, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """NeMo's masked dw_striding stack in float64, up to the output projection: before every
    layer the frames at or past the current lengths zeroed; 3x3 stride-2 convolutions over
    zero-padded time and frequency; the last stage's (C, F') flattened channels-major."""
    before, after = stage_padding(sub.causal)
    h, lengths = x[..., None], lengths.copy()
    for layer in sub.conv:
        h = h * (np.arange(h.shape[1])[None, :] < lengths[:, None])[:, :, None, None]
        if isinstance(layer, nn.ReLU):
            h = np.maximum(h, 0.0)
            continue
        weight, bias = np.array(layer.weight, np.float64), np.array(layer.bias, np.float64)
        if weight.shape[1] == 1:  # pointwise
            h = h @ weight[:, 0, 0, :].T + bias
            continue
        padded = np.pad(h, [(0, 0), (before, after), (before, after), (0, 0)])
        time = (padded.shape[1] - 3) // 2 + 1
        freq = (padded.shape[2] - 3) // 2 + 1
        h = bias + sum(
            padded[:, i : i + 2 * time - 1 : 2, j : j + 2 * freq - 1 : 2, :] * weight[:, i, j, 0]
            for i in range(3)
            for j in range(3)
        )  # one input channel, or depthwise: each output channel reads its own
        lengths = np.array(output_length(lengths, 1, sub.causal))
    h = h * (np.arange(h.shape[1])[None, :] < lengths[:, None])[:, :, None, None]
    batch, time, freq, channels = h.shape
    return h.transpose(0, 1, 3, 2).reshape(batch, time, channels * freq)


CASES = [  # channels, factor, causal, feature bins, frames, lengths
    (24, 8, False, 80, 203, [203, 150, 1, 0]),
    (24, 8, True, 80, 203, [203, 97]),
    (16, 4, False, 67, 130, [130, 129, 64]),
    (20, 16, True, 80, 333, [333, 200]),
    (32, 2, False, 80, 41, [41, 40]),
    (16, 8, False, 80, 101, [160, 101]),  # a length past the frames reads nothing beyond them
]


@pytest.mark.parametrize("chunk_values", [1, cpu_subsampling.CHUNK_VALUES])  # 1: one frame
@pytest.mark.parametrize(("channels", "factor", "causal", "bins", "frames", "lengths"), CASES)
def test_equals_float64(monkeypatch, channels, factor, causal, bins, frames, lengths,
                        chunk_values) -> None:  # fmt: skip
    """Plain and causal padding, 1 to 4 stages, lengths down to none, channel counts off the
    vector width, and work items of one output frame each (every item its own halo)."""
    assert native_cpu.library() is not None, "the native library did not build"
    monkeypatch.setattr(cpu_subsampling, "CHUNK_VALUES", chunk_values)
    sub = _subsampling(channels, factor, causal, bins)
    x = mx.random.normal((len(lengths), frames, bins)) * 2
    out_frames = output_length(frames, sub.stages, causal)
    assert cpu_subsampling.usable(sub, x, out_frames)
    ours = np.array(cpu_subsampling.subsample(sub, x, mx.array(lengths)))
    expected = _reference(sub, np.array(x, dtype=np.float64), np.array(lengths))
    assert ours.shape == expected.shape
    error = np.abs(ours - expected).max() / np.abs(expected).max()
    assert error < 2e-6


def test_module_equals_the_mlx_path(monkeypatch) -> None:
    """The whole module (projection included), native against MLX's chunked path, on an input
    long enough for MLX's pieces and with a padded item."""
    sub = _subsampling(32, 8, False)
    x = mx.random.normal((2, 1300, 80))
    lengths = mx.array([1300, 777])
    native, native_lengths = sub(x, lengths)
    monkeypatch.setenv("MLX_CONFORMER_NATIVE", "off")
    expected, expected_lengths = sub(x, lengths)
    np.testing.assert_array_equal(np.array(native_lengths), np.array(expected_lengths))
    np.testing.assert_allclose(np.array(native), np.array(expected), rtol=1e-5, atol=1e-5)


def test_mlx_path_for_striding_few_frames_and_other_dtypes() -> None:
    sub = _subsampling(16, 8, False)
    few = cpu_subsampling.MIN_FRAMES - 1
    assert not cpu_subsampling.usable(sub, mx.zeros((1, few * 8, 80)), few)
    assert cpu_subsampling.usable(sub, mx.zeros((1, few * 8, 80)), few + 1)
    assert not cpu_subsampling.usable(sub, mx.zeros((1, 200, 80), dtype=mx.float16), 25)
    striding = _subsampling(16, 4, False, kind="striding")  # full 3x3 convolutions: MLX's path
    assert not cpu_subsampling.usable(striding, mx.zeros((1, 200, 80)), 50)
