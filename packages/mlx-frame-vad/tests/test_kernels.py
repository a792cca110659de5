"""The blocked depthwise convolution against MLX's own grouped convolution: every stride,
dilation and length (shorter than a block, not a multiple of one, one frame), masked."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_frame_vad.kernels import BLOCK, depthwise

SHAPES = [(11, 2, 1), (13, 1, 1), (29, 1, 2), (3, 1, 1), (1, 1, 1), (5, 2, 3), (33, 2, 1)]


@pytest.mark.parametrize(("kernel", "stride", "dilation"), SHAPES)
@pytest.mark.parametrize("time", [1, 7, BLOCK, 3 * BLOCK + 5, 401])
def test_depthwise_equals_grouped_conv1d(kernel, stride, dilation, time):
    rng = np.random.default_rng(kernel * 1000 + time)
    channels, padding = 6, dilation * (kernel - 1) // 2
    x = mx.array(rng.normal(size=(2, channels, time)).astype(np.float32))
    weight = mx.array(rng.normal(size=(channels, kernel, 1)).astype(np.float32))
    lengths = np.array([time, max(1, time // 2)])
    keep = mx.array((np.arange(time)[None, :] < lengths[:, None])[:, None].astype(np.float32))
    expected = mx.conv1d(
        (x * keep).swapaxes(1, 2), weight, stride, padding, dilation, groups=channels
    ).swapaxes(1, 2)
    got = depthwise(x, keep, weight, stride, dilation, padding)
    assert got.shape == expected.shape
    np.testing.assert_allclose(np.array(got), np.array(expected), rtol=1e-5, atol=1e-5)
    for item, length in enumerate(lengths.tolist()):  # one item, its valid frames as an int
        single = depthwise(x[item : item + 1], length, weight, stride, dilation, padding)
        np.testing.assert_allclose(np.array(single), np.array(expected[item : item + 1]),
                                   rtol=1e-5, atol=1e-5)  # fmt: skip


@pytest.mark.parametrize("frames", [0, 5, 2048, 2049, 5000])
def test_time_and_channels_swap_in_runs_equals_swapaxes(frames):
    from mlx_frame_vad.convasr import swap_time_and_channels

    x = mx.array(np.random.default_rng(frames).normal(size=(2, frames, 7)).astype(np.float32))
    channels_first = swap_time_and_channels(x, 1)
    np.testing.assert_array_equal(np.array(channels_first), np.array(x).swapaxes(1, 2))
    back = swap_time_and_channels(channels_first, 2)
    np.testing.assert_array_equal(np.array(back), np.array(x))
