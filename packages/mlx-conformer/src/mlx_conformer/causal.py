"""NeMo's causal `ConvSubsampling` (`causal_downsampling: true`) of cache-aware models.

Each stride-2 3x3 convolution is NeMo's `CausalConv2D`: padding 2 before and 1 after, on
both time and frequency, so an output frame sees only its own and earlier input frames.
Lengths follow NeMo's `calc_length` with those paddings: `L // 2 + 1` per stage. Parameter
names are those of `ConvSubsampling` (`conv.0`, `conv.2`, ..., `out`).
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn

from .config import ConformerConfig
from .subsampling import _mask_time

_KERNEL, _STRIDE = 3, 2
_LEFT, _RIGHT = _KERNEL - 1, _STRIDE - 1


def causal_length(length, stages: int):
    """Frames after `stages` causal stride-2 convolutions (NeMo's calc_length, paddings 2 + 1)."""
    for _ in range(stages):
        length = (length + _LEFT + _RIGHT - _KERNEL) // _STRIDE + 1
    return length


class CausalConvSubsampling(nn.Module):
    """(B, T, F) features -> (B, T', d_model), causal in time; masks padded frames as NeMo.

    Long inputs run in pieces of `chunk_frames` output frames. An output frame o of an
    8x stack reads input frames [8o - 14, 8o]; a piece that starts `2 * factor` frames
    before its first output (a multiple of the factor, so every stage stays aligned)
    covers that, and the piece's first two outputs, which saw the piece's own padding,
    are dropped. The result equals one pass.
    """

    def __init__(self, config: ConformerConfig) -> None:
        super().__init__()
        channels = config.subsampling_conv_channels
        stages = int(math.log2(config.subsampling_factor))
        layers: list[nn.Module] = []
        if config.subsampling == "dw_striding":
            layers += [nn.Conv2d(1, channels, _KERNEL, stride=_STRIDE), nn.ReLU()]
            for _ in range(stages - 1):
                layers += [
                    nn.Conv2d(channels, channels, _KERNEL, stride=_STRIDE, groups=channels),
                    nn.Conv2d(channels, channels, kernel_size=1),
                    nn.ReLU(),
                ]
        else:  # striding
            in_channels = 1
            for _ in range(stages):
                layers += [nn.Conv2d(in_channels, channels, _KERNEL, stride=_STRIDE), nn.ReLU()]
                in_channels = channels
        self.conv = layers
        self.stages = stages
        self.factor = config.subsampling_factor
        self.chunk_frames = 128
        self.out = nn.Linear(channels * causal_length(config.feat_in, stages), config.d_model)

    def __call__(self, features: mx.array, lengths: mx.array) -> tuple[mx.array, mx.array]:
        lengths = lengths.astype(mx.int32)
        time = features.shape[1]
        out_time = causal_length(time, self.stages)
        out_lengths = causal_length(lengths, self.stages)
        if out_time <= self.chunk_frames:
            return self.out(self._convolve(features, lengths, 0)), out_lengths
        pieces = []
        for first in range(0, out_time, self.chunk_frames):
            last = min(out_time, first + self.chunk_frames)
            start = max(0, (first - 2) * self.factor)
            stop = min(time, last * self.factor)
            x = self._convolve(features[:, start:stop], lengths, start)
            skip = first - start // self.factor
            piece = self.out(x[:, skip : skip + last - first])
            mx.eval(piece)
            pieces.append(piece)
        return mx.concatenate(pieces, axis=1), out_lengths

    def _convolve(self, x: mx.array, lengths: mx.array, start: int) -> mx.array:
        x = x[..., None]  # (B, T, F, 1)
        valid = lengths - start
        for layer in self.conv:
            if isinstance(layer, nn.ReLU):
                x = nn.relu(x)
                continue
            x = _mask_time(x, valid)
            if layer.weight.shape[1] == 1 and layer.weight.shape[2] == 1:  # pointwise
                x = x @ layer.weight.reshape(layer.weight.shape[0], -1).T + layer.bias
                continue
            x = mx.pad(x, [(0, 0), (_LEFT, _RIGHT), (_LEFT, _RIGHT), (0, 0)])
            if layer.groups > 1:
                x = _depthwise(x, layer.weight, layer.bias)
            else:
                x = layer(x)
            # NeMo: (length + 2 + 1 - 3) // 2 + 1, in this piece's frame index
            lengths = causal_length(lengths, 1)
            start //= _STRIDE
            valid = lengths - start
        x = _mask_time(x, valid)
        batch, time, freq, channels = x.shape
        return x.transpose(0, 1, 3, 2).reshape(batch, time, channels * freq)


@mx.compile
def _depthwise(padded: mx.array, weight: mx.array, bias: mx.array) -> mx.array:
    """3x3 depthwise convolution, stride 2, of an already padded (B, T, F, C) input."""
    _, time, freq, _ = padded.shape
    out_time, out_freq = (time - _KERNEL) // 2 + 1, (freq - _KERNEL) // 2 + 1
    out = bias
    for i in range(_KERNEL):
        for j in range(_KERNEL):
            tap = padded[:, i : i + 2 * out_time - 1 : 2, j : j + 2 * out_freq - 1 : 2, :]
            out = out + tap * weight[:, i, j, 0]
    return out
