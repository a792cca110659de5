"""NeMo's `ConvASREncoder`: a stack of `JasperBlock`s of masked 1-D convolutions.

Written for every block NeMo's MarbleNet, QuartzNet and Jasper configs use (separable or
full convolutions, stride, dilation, repeated sub-blocks, residual add, batch norm), so that a
character-CTC QuartzNet / Jasper can reuse it; squeeze-excitation (Citrinet), dense
residuals, heads, grouped convolutions and limited future context are refused by
`from_nemo`, one line each, rather than run wrongly.

The encoder takes and returns channels-last (batch, time, channels); its blocks and
convolutions run channels-first (batch, channels, time), as NeMo's, which the fast depthwise
convolution needs (`kernels.py`). Parameter names and layouts are NeMo's as nemo-mlx-convert
writes them (`encoder.<block>.mconv.<i>.conv.weight`, `...res.0.<i>...`), so a converted
state dict loads as it is. As NeMo's `MaskedConv1d`, every convolution first zeroes the
frames at and past the current length, and the lengths follow each strided convolution;
batch norm is applied with its running statistics (eval mode, eps 1e-3), as NeMo runs it at
inference, folded into the convolution before it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from .kernels import ACTIVATIONS, depthwise, epilogue

_BN_EPS = 1e-3  # NeMo's JasperBlock builds BatchNorm1d(eps=1e-3)
# Block keys that change nothing at inference, or only what this module refuses below.
_BLOCK_KEYS = {"filters", "repeat", "kernel", "stride", "dilation", "dropout", "residual",
               "separable", "kernel_size_factor", "residual_mode", "groups", "heads", "se",
               "se_reduction_ratio", "se_context_size", "se_interpolation_mode",
               "residual_dense", "stride_last", "future_context", "quantize"}  # fmt: skip
_ENCODER_KEYS = {"_target_", "jasper", "activation", "feat_in", "normalization_mode",
                 "residual_mode", "norm_groups", "conv_mask", "frame_splicing", "init_mode",
                 "quantize"}  # fmt: skip


def _first(value: Any) -> int:
    """NeMo's kernel / stride / dilation are one-element lists (or a bare int)."""
    return int(value[0] if isinstance(value, Sequence) else value)


@dataclass(frozen=True)
class JasperBlockConfig:
    """One entry of the encoder's `jasper` list, as NeMo's `JasperBlock` reads it."""

    filters: int
    repeat: int
    kernel: int
    stride: int = 1
    dilation: int = 1
    residual: bool = False
    separable: bool = False
    residual_mode: str = "add"
    stride_last: bool = False

    @classmethod
    def from_nemo(cls, cfg: Mapping[str, Any], index: int) -> JasperBlockConfig:
        unknown = sorted(set(cfg) - _BLOCK_KEYS)
        if unknown:
            raise ValueError(f"ConvASR block {index}: config key {unknown[0]!r} is not supported")
        refused = {
            "se": cfg.get("se", False),  # Citrinet's squeeze-excitation
            "residual_dense": cfg.get("residual_dense", False),  # Jasper-DR
            "heads": cfg.get("heads", -1) != -1,
            "groups": cfg.get("groups", 1) != 1,
            "future_context": cfg.get("future_context", -1) >= 0,
        }
        for key, present in refused.items():
            if present:
                raise ValueError(f"ConvASR block {index}: {key!r} is not supported")
        mode = cfg.get("residual_mode", "add")
        if mode not in ("add", "stride_add", "max"):
            raise ValueError(f"ConvASR block {index}: residual_mode {mode!r} is not supported")
        kernel = _first(cfg["kernel"])
        factor = float(cfg.get("kernel_size_factor", 1.0))
        kernel = max(int(kernel * factor), 1)  # NeMo's compute_new_kernel_size
        kernel += 1 - kernel % 2  # rounded up to an odd size
        stride, dilation = _first(cfg.get("stride", 1)), _first(cfg.get("dilation", 1))
        if stride > 1 and dilation > 1:
            raise ValueError(f"ConvASR block {index}: stride and dilation both above 1")
        return cls(
            filters=int(cfg["filters"]),
            repeat=int(cfg["repeat"]),
            kernel=kernel,
            stride=stride,
            dilation=dilation,
            residual=bool(cfg.get("residual", False)),
            separable=bool(cfg.get("separable", False)),
            residual_mode=mode,
            stride_last=bool(cfg.get("stride_last", False)),
        )


@dataclass(frozen=True)
class ConvASRConfig:
    """NeMo's `ConvASREncoder` section: input features, blocks, activation, masking."""

    feat_in: int
    blocks: tuple[JasperBlockConfig, ...]
    activation: str = "relu"
    conv_mask: bool = True

    @property
    def subsampling_factor(self) -> int:
        factor = 1
        for block in self.blocks:
            factor *= block.stride
        return factor

    @property
    def feat_out(self) -> int:
        return self.blocks[-1].filters

    @classmethod
    def from_nemo(cls, cfg: Mapping[str, Any]) -> ConvASRConfig:
        """Build from a NeMo model's `encoder` section (target `ConvASREncoder`)."""
        target = str(cfg.get("_target_", "ConvASREncoder")).rsplit(".", 1)[-1]
        if target != "ConvASREncoder":
            raise ValueError(f"encoder {target!r} is not supported; supported: ConvASREncoder")
        unknown = sorted(set(cfg) - _ENCODER_KEYS)
        if unknown:
            raise ValueError(f"ConvASR encoder config key {unknown[0]!r} is not supported")
        if cfg.get("normalization_mode", "batch") != "batch":
            raise ValueError(
                f"ConvASR normalization_mode {cfg['normalization_mode']!r} is not supported; supported: batch"
            )
        if int(cfg.get("frame_splicing", 1)) != 1:
            raise ValueError("ConvASR frame_splicing other than 1 is not supported")
        activation = str(cfg.get("activation", "relu"))
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"ConvASR activation {activation!r} is not supported; "
                f"supported: {', '.join(sorted(ACTIVATIONS))}"
            )
        blocks = tuple(
            JasperBlockConfig.from_nemo(block, i) for i, block in enumerate(cfg["jasper"])
        )
        if not blocks:
            raise ValueError("ConvASR encoder without blocks")
        return cls(
            feat_in=int(cfg["feat_in"]),
            blocks=blocks,
            activation=activation,
            conv_mask=bool(cfg.get("conv_mask", True)),
        )


class MaskedConv1d(nn.Module):
    """NeMo's `MaskedConv1d`: zero the frames past each length, convolve (no bias), and
    return the lengths the convolution leaves."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        use_mask: bool = True,
    ) -> None:
        super().__init__()
        self.padding = dilation * (kernel - 1) // 2  # NeMo's get_same_padding
        self.kernel, self.stride, self.dilation = kernel, stride, dilation
        self.use_mask = use_mask
        self.conv = nn.Conv1d(
            in_channels, out_channels, kernel, stride=stride, padding=self.padding,
            dilation=dilation, groups=groups, bias=False,
        )  # fmt: skip

    @property
    def pointwise(self) -> bool:
        return self.kernel == 1 and self.conv.groups == 1

    def out_lengths(self, lengths: mx.array) -> mx.array:
        if self.stride == 1 and 2 * self.padding == self.dilation * (self.kernel - 1):
            return lengths
        span = 2 * self.padding - self.dilation * (self.kernel - 1) - 1
        return (lengths + span) // self.stride + 1

    def keep(self, lengths: mx.array, frames: int, dtype: mx.Dtype) -> mx.array:
        """(B, 1, frames): 1 for the input frames NeMo's masking keeps, 0 past each length."""
        if not self.use_mask:
            return mx.ones((1, 1, 1), dtype=dtype)
        return (mx.arange(frames)[None, :] < lengths[:, None])[:, None].astype(dtype)

    def __call__(self, x: mx.array, lengths: mx.array) -> tuple[mx.array, mx.array]:
        """x (B, C, T) channels-first -> (B, C', T') and the lengths it leaves."""
        keep = self.keep(lengths, x.shape[-1], x.dtype)
        conv = self.conv
        if conv.groups > 1 and conv.groups == x.shape[1]:
            if x.shape[0] == 1:  # one item: keep its first frames, a slice, not a product
                keep = int(lengths[0]) if self.use_mask else x.shape[-1]
            out = depthwise(x, keep, conv.weight, self.stride, self.dilation, self.padding)
        else:
            out = conv((x * keep).swapaxes(1, 2)).swapaxes(1, 2)
        return out, self.out_lengths(lengths)

    def scaled(
        self, x: mx.array, lengths: mx.array, scale: mx.array
    ) -> tuple[mx.array, mx.array, mx.array]:
        """The convolution with each output channel's weights times `scale` (a batch norm
        folded in), unmasked when pointwise: (output, frames of it to keep, lengths).

        A pointwise convolution is a matmul whose output frames are its input frames, so
        the input's mask is applied to the output, in the fused step after it."""
        keep = self.keep(lengths, x.shape[-1], x.dtype)
        if not self.pointwise:
            conv = self.conv
            weight = conv.weight * scale[:, None, None]
            out = mx.conv1d((x * keep).swapaxes(1, 2), weight, self.stride, self.padding,
                            self.dilation, conv.groups).swapaxes(1, 2)  # fmt: skip
            return out, mx.ones((1, 1, 1), dtype=out.dtype), self.out_lengths(lengths)
        if self.stride > 1:
            x, keep = x[..., :: self.stride], keep[..., :: self.stride]
        weight = self.conv.weight[:, 0, :] * scale[:, None]
        return weight @ x, keep, self.out_lengths(lengths)


def _conv_bn(
    in_channels: int,
    out_channels: int,
    kernel: int,
    stride: int,
    dilation: int,
    separable: bool,
    use_mask: bool,
) -> list[nn.Module]:
    """NeMo's `_get_conv_bn_layer`: (depthwise + pointwise, or one convolution) + batch norm."""
    if separable:
        convs = [
            MaskedConv1d(in_channels, in_channels, kernel, stride=stride, dilation=dilation,
                         groups=in_channels, use_mask=use_mask),
            MaskedConv1d(in_channels, out_channels, 1, use_mask=use_mask),
        ]  # fmt: skip
    else:
        convs = [MaskedConv1d(in_channels, out_channels, kernel, stride=stride,
                              dilation=dilation, use_mask=use_mask)]  # fmt: skip
    return [*convs, nn.BatchNorm(out_channels, eps=_BN_EPS)]


def _conv_bn_folded(
    layers: list[nn.Module], x: mx.array, lengths: mx.array
) -> tuple[mx.array, mx.array, mx.array, mx.array]:
    """Convolutions then batch norm (running statistics), the norm's scale folded into the
    last convolution's weights: (output before the shift, rows to keep, shift, lengths).

    Folding is exact up to float32 rounding, and costs a few (channels,)-sized operations
    per call, nothing per frame."""
    *convs, norm = layers
    for conv in convs[:-1]:
        x, lengths = conv(x, lengths)
    scale = norm.weight * mx.rsqrt(norm.running_var + norm.eps)
    out, keep, lengths = convs[-1].scaled(x, lengths, scale)
    return out, keep, (norm.bias - norm.running_mean * scale)[:, None], lengths


class JasperBlock(nn.Module):
    """`repeat` sub-blocks of conv + batch norm (activation between them), an optional
    residual branch (pointwise conv + batch norm) added before the last activation.

    The activation slots of `mconv` / `mout` hold placeholders that keep NeMo's layer
    indices (they hold no tensors); the activation itself runs in the fused `epilogue`."""

    def __init__(
        self, in_channels: int, config: JasperBlockConfig, activation: str, use_mask: bool
    ) -> None:
        super().__init__()
        self.residual_mode = config.residual_mode
        self.activation = activation
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(config.repeat):
            last = i == config.repeat - 1
            stride = config.stride if last or not config.stride_last else 1
            layers += _conv_bn(channels, config.filters, config.kernel, stride,
                               config.dilation, config.separable, use_mask)  # fmt: skip
            if not last:
                layers += [nn.Identity(), nn.Dropout(0.0)]
            channels = config.filters
        self.mconv = layers
        if config.residual:
            stride = config.stride if config.residual_mode == "stride_add" else 1
            res = [MaskedConv1d(in_channels, config.filters, 1, stride=stride, use_mask=use_mask),
                   nn.BatchNorm(config.filters, eps=_BN_EPS)]  # fmt: skip
            self.res = [res]
        self.mout = [nn.Identity(), nn.Dropout(0.0)]

    def _sub_blocks(self) -> list[list[nn.Module]]:
        """`mconv` cut into its sub-blocks' convolutions and batch norm."""
        groups, current = [], []
        for layer in self.mconv:
            if isinstance(layer, MaskedConv1d | nn.BatchNorm):
                current.append(layer)
            if isinstance(layer, nn.BatchNorm):
                groups.append(current)
                current = []
        return groups

    def __call__(self, x: mx.array, lengths: mx.array) -> tuple[mx.array, mx.array]:
        """x (B, C, T) channels-first -> (B, filters, T') and the lengths it leaves."""
        *inner, last = self._sub_blocks()
        out, out_lengths = x, lengths
        for layers in inner:
            y, keep, shift, out_lengths = _conv_bn_folded(layers, out, out_lengths)
            out = epilogue(self.activation, None)(y, keep, shift)
        y, keep, shift, out_lengths = _conv_bn_folded(last, out, out_lengths)
        if (res := getattr(self, "res", None)) is None:
            return epilogue(self.activation, None)(y, keep, shift), out_lengths
        r, keep_r, shift_r, _ = _conv_bn_folded(res[0], x, lengths)
        mode = "max" if self.residual_mode == "max" else "add"
        return epilogue(self.activation, mode)(y, keep, shift, r, keep_r, shift_r), out_lengths


class ConvASREncoder(nn.Module):
    """Features (B, T, feat_in) and lengths -> encoded (B, T', feat_out) and lengths."""

    def __init__(self, config: ConvASRConfig) -> None:
        super().__init__()
        self.config = config
        blocks, channels = [], config.feat_in
        for block in config.blocks:
            blocks.append(JasperBlock(channels, block, config.activation, config.conv_mask))
            channels = block.filters
        self.encoder = blocks
        self.eval()  # batch norm from its running statistics, dropout off

    def __call__(self, features: mx.array, lengths: mx.array) -> tuple[mx.array, mx.array]:
        x = swap_time_and_channels(features, 1)  # the blocks run channels-first, as NeMo's
        for block in self.encoder:
            x, lengths = block(x, lengths)
        return swap_time_and_channels(x, 2), lengths


_RUN = 2048  # frames per piece of a long transposition


def swap_time_and_channels(x: mx.array, time_axis: int) -> mx.array:
    """(B, T, C) <-> (B, C, T), `time_axis` being T's axis in `x`; a long input copied in
    runs of `_RUN` frames.

    The next operation copies a transposed view anyway, and MLX copies it in one strided
    pass that thrashes the cache on long inputs: 600 s of 80 features (60000 frames) took
    17 ms whole and 4 ms in runs (60 s: 0.4 ms either way)."""
    frames = x.shape[time_axis]
    if frames <= _RUN:
        return x.swapaxes(1, 2)
    pieces = [
        (x[:, start : start + _RUN] if time_axis == 1 else x[..., start : start + _RUN])
        for start in range(0, frames, _RUN)
    ]
    return mx.concatenate([piece.swapaxes(1, 2) for piece in pieces], axis=3 - time_axis)
