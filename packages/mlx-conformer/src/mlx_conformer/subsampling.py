"""NeMo's `ConvSubsampling` (`dw_striding`, `striding`) with its masking of padded frames."""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn

from .config import ConformerConfig

_KERNEL, _STRIDE, _PADDING = 3, 2, 1


class ConvSubsampling(nn.Module):
    """Stride-2 3x3 convolutions over (time, frequency), then a linear projection.

    `conv` mirrors NeMo's `nn.Sequential`, activations included, so that parameter names
    (`conv.0`, `conv.2`, ...) are NeMo's. Before every layer, frames at or past each
    item's current length are zeroed, as NeMo's `MaskedConvSequential` does, so a batched
    item's output does not depend on its padding.
    """

    def __init__(self, config: ConformerConfig) -> None:
        super().__init__()
        channels = config.subsampling_conv_channels
        stages = int(math.log2(config.subsampling_factor))
        layers: list[nn.Module] = []
        if config.subsampling == "dw_striding":
            layers += [_conv2d(1, channels), nn.ReLU()]
            for _ in range(stages - 1):
                layers += [
                    _conv2d(channels, channels, groups=channels),
                    nn.Conv2d(channels, channels, kernel_size=1),
                    nn.ReLU(),
                ]
        else:  # striding
            in_channels = 1
            for _ in range(stages):
                layers += [_conv2d(in_channels, channels), nn.ReLU()]
                in_channels = channels
        self.conv = layers
        self.stages = stages
        self.factor = config.subsampling_factor
        self.chunk_frames = 128
        freq = config.feat_in
        for _ in range(stages):
            freq = (freq + 2 * _PADDING - _KERNEL) // _STRIDE + 1
        self.out = nn.Linear(channels * freq, config.d_model)

    def __call__(self, features: mx.array, lengths: mx.array) -> tuple[mx.array, mx.array]:
        """(B, T, F) features -> (B, T', d_model), and the lengths after subsampling.

        Long inputs run in chunks of `chunk_frames` output frames with `factor` input
        frames of context on each side, which covers the stack's receptive field (+-(factor
        - 1) frames), so the result equals one pass; the first convolution's output, 32x
        the input's size, then never exists for the whole input at once.
        """
        lengths = lengths.astype(mx.int32)
        time = features.shape[1]
        out_time = _output_length(time, self.stages)
        if out_time <= self.chunk_frames:
            x = self._convolve(features, lengths, 0)
            return self.out(x), _output_length(lengths, self.stages)
        pieces = []
        for first in range(0, out_time, self.chunk_frames):
            last = min(out_time, first + self.chunk_frames)
            start = max(0, (first - 1) * self.factor)
            stop = min(time, (last + 1) * self.factor)
            x = self._convolve(features[:, start:stop], lengths, start)
            skip = first - start // self.factor
            piece = self.out(x[:, skip : skip + last - first])
            mx.eval(piece)
            pieces.append(piece)
        return mx.concatenate(pieces, axis=1), _output_length(lengths, self.stages)

    def _convolve(self, x: mx.array, lengths: mx.array, start: int) -> mx.array:
        """The convolutions over input frames [start, ...), masked by global frame index."""
        x = x[..., None]  # (B, T, F, 1): time and frequency are the conv's two axes
        valid = lengths - start  # lengths in this piece's own frame index
        for layer in self.conv:
            if isinstance(layer, nn.ReLU):
                x = nn.relu(x)  # masking is idempotent here: relu(0) = 0
                continue
            x = _mask_time(x, valid)
            if layer.weight.shape[1] == 1:  # pointwise: a matmul over channels
                x = x @ layer.weight.reshape(layer.weight.shape[0], -1).T + layer.bias
                continue
            if layer.groups > 1:  # depthwise: nine strided taps, fused by mx.compile
                x = _depthwise_stride2(x, layer.weight, layer.bias)
            else:
                x = layer(x)
            lengths = _output_length(lengths, 1)
            start //= _STRIDE
            valid = lengths - start
        x = _mask_time(x, valid)
        batch, time, freq, channels = x.shape
        # NeMo flattens (channels, frequency) with channels major.
        return x.transpose(0, 1, 3, 2).reshape(batch, time, channels * freq)


def _output_length(length, stages: int):
    """Frames after `stages` stride-2, kernel-3, padding-1 convolutions (NeMo's calc_length)."""
    for _ in range(stages):
        length = (length + 2 * _PADDING - _KERNEL) // _STRIDE + 1
    return length


def _conv2d(in_channels: int, out_channels: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size=_KERNEL,
        stride=_STRIDE,
        padding=_PADDING,
        groups=groups,
    )


@mx.compile
def _depthwise_stride2(x: mx.array, weight: mx.array, bias: mx.array) -> mx.array:
    """3x3 depthwise convolution, stride 2, padding 1, channels-last; weight (C, 3, 3, 1).

    MLX's grouped convolution is ~3x slower on the CPU than this sum of strided slices.
    """
    _, time, freq, _ = x.shape
    out_time, out_freq = (time - 1) // 2 + 1, (freq - 1) // 2 + 1
    padded = mx.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    out = bias
    for i in range(_KERNEL):
        for j in range(_KERNEL):
            tap = padded[:, i : i + 2 * out_time : 2, j : j + 2 * out_freq : 2, :]
            out = out + tap * weight[:, i, j, 0]
    return out


def _mask_time(x: mx.array, lengths: mx.array) -> mx.array:
    valid = mx.arange(x.shape[1])[None, :] < lengths[:, None]
    return x * valid[:, :, None, None].astype(x.dtype)
