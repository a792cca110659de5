"""NeMo's `ConvSubsampling` (`dw_striding`, `striding`), plain or causal, with its masking
of padded frames.

Each stage is a stride-2 3x3 convolution over (time, frequency). Plain: one frame of
padding on each side. Causal (`causal_downsampling: true`, the cache-aware checkpoints'
`CausalConv2D`): two before and one after, on both axes, so that an output frame sees only
its own and earlier input frames. Lengths follow NeMo's `calc_length` with those paddings.
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn

from . import cpu_subsampling
from .config import ConformerConfig
from .subsampling_shape import KERNEL, STRIDE, output_length, stage_padding


class ConvSubsampling(nn.Module):
    """Stride-2 3x3 convolutions over (time, frequency), then a linear projection.

    On the CPU, `dw_striding` runs as one native call up to the projection
    (`cpu_subsampling`), the same sums on every core.

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
            layers += [nn.Conv2d(1, channels, KERNEL, stride=STRIDE), nn.ReLU()]
            for _ in range(stages - 1):
                layers += [
                    nn.Conv2d(channels, channels, KERNEL, stride=STRIDE, groups=channels),
                    nn.Conv2d(channels, channels, kernel_size=1),
                    nn.ReLU(),
                ]
        else:  # striding
            in_channels = 1
            for _ in range(stages):
                layers += [nn.Conv2d(in_channels, channels, KERNEL, stride=STRIDE), nn.ReLU()]
                in_channels = channels
        self.conv = layers
        self.stages = stages
        self.causal = config.causal_downsampling
        self.factor = config.subsampling_factor
        # 48-64 ran ~10% faster than 128 or 32 (a piece's first-stage output, ~3M values, then
        # stays in cache between passes; smaller pieces repeat more context)
        self.chunk_frames = 64
        freq = output_length(config.feat_in, stages, self.causal)
        self.out = nn.Linear(channels * freq, config.d_model)

    def __call__(self, features: mx.array, lengths: mx.array) -> tuple[mx.array, mx.array]:
        """(B, T, F) features -> (B, T', d_model), and the lengths after subsampling.

        Long inputs run in chunks of `chunk_frames` output frames. Output frame o reads the
        input frames within factor - 1 of factor * o (plain), or [8o - 14, 8o] (causal, 8x
        stack); a piece with one (plain: on each side) or two (causal: in
        front) output frames' worth of input around its own covers that, and starts on a
        multiple of the factor so that every stage stays aligned. The outputs that saw the
        piece's own padding are dropped: the result equals one pass, and the first
        convolution's output, 32x the input's size, never exists for the whole input at once.
        """
        lengths = lengths.astype(mx.int32)
        time = features.shape[1]
        out_time = output_length(time, self.stages, self.causal)
        out_lengths = output_length(lengths, self.stages, self.causal)
        if cpu_subsampling.usable(self, features, out_time):
            flat = cpu_subsampling.subsample(self, features, lengths)
            if flat is not None:
                return self.out(flat), out_lengths
        shortest = int(mx.min(lengths).item())  # pieces within every item need no masking
        if out_time <= self.chunk_frames:
            x = self._convolve(features, lengths, 0, shortest < time)
            return self.out(x), out_lengths
        before, after = (2, 0) if self.causal else (1, 1)  # output frames of context
        pieces = []
        for first in range(0, out_time, self.chunk_frames):
            last = min(out_time, first + self.chunk_frames)
            start = max(0, (first - before) * self.factor)
            stop = min(time, (last + after) * self.factor)
            x = self._convolve(features[:, start:stop], lengths, start, shortest < stop)
            skip = first - start // self.factor
            piece = self.out(x[:, skip : skip + last - first])
            mx.eval(piece)
            pieces.append(piece)
        return mx.concatenate(pieces, axis=1), out_lengths

    def _convolve(self, x: mx.array, lengths: mx.array, start: int, masked: bool) -> mx.array:
        """The convolutions over input frames [start, ...), masked by global frame index
        where `masked` (some item ends within the piece; elsewhere masking changes nothing:
        every stage's valid frames are then its whole piece)."""
        valid = lengths - start  # lengths in this piece's own frame index
        padding = stage_padding(self.causal)
        lengths = output_length(lengths, 1, self.causal)
        start //= STRIDE
        x = _first_stage(
            _mask_time(x, valid) if masked else x,
            self.conv[0],
            padding,
            lengths - start if masked else None,
            padding if len(self.conv) > 2 else (0, 0),
        )
        ready = True  # x is masked and padded for the next 3x3 convolution
        for layer in self.conv[2:]:
            if isinstance(layer, nn.ReLU):
                x = nn.relu(x)  # masking is idempotent here: relu(0) = 0
                continue
            if layer.weight.shape[1] == 1:  # pointwise: a matmul over channels
                x = _mask_time(x, lengths - start) if masked else x
                x = mx.addmm(layer.bias, x, layer.weight.reshape(layer.weight.shape[0], -1).T)
                continue
            if not ready:
                x = _mask_time(x, lengths - start) if masked else x
                x = mx.pad(x, [(0, 0), padding, padding, (0, 0)])
            ready = False
            if layer.groups > 1:  # depthwise: nine strided taps, fused by mx.compile
                x = _depthwise_stride2(x, layer.weight, layer.bias)
            else:
                x = layer(x)
            lengths = output_length(lengths, 1, self.causal)
            start //= STRIDE
        x = _mask_time(x, lengths - start) if masked else x
        batch, time, freq, channels = x.shape
        # NeMo flattens (channels, frequency) with channels major.
        return x.transpose(0, 1, 3, 2).reshape(batch, time, channels * freq)


def _first_stage(
    x: mx.array,
    conv: nn.Conv2d,
    padding: tuple[int, int],
    valid: mx.array | None,
    out_padding: tuple[int, int],
) -> mx.array:
    """The first 3x3 stride-2 convolution (one input channel) and its ReLU, as one matmul of
    its 3x3 patches of (B, T, F) with the (C, 9) weight: (B, T', F', C), frames at or past
    `valid` zeroed, then zero-padded by `out_padding` on time and frequency for the next
    convolution.

    The bias rides on a tenth patch value, 1 inside and 0 in the padding and the masked
    frames, so that the matmul writes the padded, masked output directly: this stage's
    output is the subsampling's largest array, and MLX's convolution plus separate masking
    and padding passes over it cost ~2x this.
    """
    x = mx.pad(x, [(0, 0), padding, padding])
    time, freq = (x.shape[1] - KERNEL) // 2 + 1, (x.shape[2] - KERNEL) // 2 + 1
    taps = [
        x[:, i : i + 2 * time - 1 : 2, j : j + 2 * freq - 1 : 2]
        for i in range(KERNEL)
        for j in range(KERNEL)
    ]
    patches = mx.stack([*taps, mx.ones_like(taps[0])], axis=-1)  # (B, T', F', 10)
    if valid is not None:
        patches = _mask_time(patches, valid)
    patches = mx.pad(patches, [(0, 0), out_padding, out_padding, (0, 0)])
    channels = conv.weight.shape[0]
    weight = mx.concatenate([conv.weight.reshape(channels, -1), conv.bias[:, None]], axis=1)
    return nn.relu(patches @ weight.T)


@mx.compile
def _depthwise_stride2(padded: mx.array, weight: mx.array, bias: mx.array) -> mx.array:
    """3x3 depthwise convolution, stride 2, of an already padded (B, T, F, C) input;
    weight (C, 3, 3, 1).

    MLX's grouped convolution is ~3x slower on the CPU than this sum of strided slices.
    """
    _, time, freq, _ = padded.shape
    out_time, out_freq = (time - KERNEL) // 2 + 1, (freq - KERNEL) // 2 + 1
    out = bias
    for i in range(KERNEL):
        for j in range(KERNEL):
            tap = padded[:, i : i + 2 * out_time - 1 : 2, j : j + 2 * out_freq - 1 : 2, :]
            out = out + tap * weight[:, i, j, 0]
    return out


def _mask_time(x: mx.array, lengths: mx.array) -> mx.array:
    """x (B, T, ...) with frames at or past each item's length zeroed."""
    valid = mx.arange(x.shape[1])[None, :] < lengths[:, None]
    return x * valid.reshape(*valid.shape, *[1] * (x.ndim - 2)).astype(x.dtype)
