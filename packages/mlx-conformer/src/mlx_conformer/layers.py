"""The Conformer block and its parts, with NeMo's parameter names."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from . import cpu_convolution, cpu_feed_forward, cpu_norm, fastmath
from .attention import RelPositionAttention
from .cache import LayerCache
from .config import ConformerConfig
from .packing import PackedRows
from .positional import SymmetricPositions

_BATCH_NORM_EPS = 1e-5  # torch's BatchNorm1d default, which NeMo uses


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int, use_bias: bool = True) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff, bias=use_bias)
        self.linear2 = nn.Linear(d_ff, d_model, bias=use_bias)

    def __call__(self, x: mx.array, lengths: mx.array | None = None) -> mx.array:
        """x (B, T, D); `lengths` (B,) valid frames (None: every frame). Given them, the native
        CPU pass skips padded frames (zeros out): nothing reads them, as attention masks them
        as keys and the convolution module zeroes them."""
        if cpu_feed_forward.usable(x, self.linear1, self.linear2):
            out = cpu_feed_forward.feed_forward(x, self.linear1, self.linear2, lengths)
            if out is not None:  # None: inside mx.compile
                return out
        return self.linear2(fastmath.silu(self.linear1(x)))


class ConvolutionModule(nn.Module):
    """Pointwise conv + GLU, depthwise conv, batch or layer norm, SiLU, pointwise conv.

    Weights are stored channels-last as MLX convolutions store them: pointwise
    (out, 1, in), depthwise (channels, kernel, 1). Padded frames are zeroed before the
    depthwise convolution, as in NeMo, so they never leak into valid frames.
    """

    def __init__(self, config: ConformerConfig) -> None:
        super().__init__()
        d = config.d_model
        self.left, self.right = config.conv_context_size
        self.norm_type = config.conv_norm_type
        self.pointwise_conv1 = nn.Conv1d(d, 2 * d, kernel_size=1, bias=config.use_bias)
        self.depthwise_conv = nn.Conv1d(
            d, d, kernel_size=config.conv_kernel_size, groups=d, bias=config.use_bias
        )
        if config.conv_norm_type == "batch_norm":
            self.batch_norm = nn.BatchNorm(d, eps=_BATCH_NORM_EPS)
        else:  # NeMo keeps the attribute name for its layer-norm variant
            self.batch_norm = nn.LayerNorm(d, eps=1e-5)
        self.pointwise_conv2 = nn.Conv1d(d, d, kernel_size=1, bias=config.use_bias)

    def __call__(
        self,
        x: mx.array,
        pad_mask: mx.array | None,
        cache: LayerCache | None = None,
        packed: PackedRows | None = None,
    ) -> mx.array:
        """x (B, T, D); pad_mask (B, T) true on padded frames; a stream's `cache` supplies
        the left context (and takes this chunk's) instead of zero padding; `packed`: x is
        (1, N, D) packed rows (`packing`), for the native CPU pass only."""
        if cache is None:  # `native_usable` asks for the batch-norm variant
            out = self._native(x, pad_mask, packed)
            if out is not None:
                return out
        if packed is not None:
            raise RuntimeError("packed rows need the native CPU convolution module")
        x = _pointwise(self.pointwise_conv1, x)
        x = _glu(x) if pad_mask is None else _masked_glu(x, pad_mask)
        if cache is None:
            x = mx.pad(x, [(0, 0), (self.left, self.right), (0, 0)])
        else:
            x = cache.convolution_inputs(x, self.right)
        weight, bias = self._depthwise_weights(x.dtype)
        if self.norm_type == "batch_norm":
            x = _depthwise(x, weight, bias, *self._batch_norm_affine())
        else:
            x = self.batch_norm(
                _depthwise(x, weight, bias, mx.ones_like(bias), mx.zeros_like(bias))
            )
        return _pointwise(self.pointwise_conv2, fastmath.silu(x))

    def _depthwise_weights(self, dtype: mx.Dtype) -> tuple[mx.array, mx.array]:
        """The depthwise convolution's (taps, channels) weight and its bias (zeros if none)."""
        dw = self.depthwise_conv
        weight = dw.weight[:, :, 0].T
        return weight, dw.bias if "bias" in dw else mx.zeros((weight.shape[1],), dtype=dtype)

    def _batch_norm_affine(self) -> tuple[mx.array, mx.array]:
        """The eval-mode batch norm as a per-channel (scale, shift)."""
        norm = self.batch_norm
        scale = norm.weight * mx.rsqrt(norm.running_var + norm.eps)
        return scale, norm.bias - norm.running_mean * scale

    def native_usable(self, x: mx.array) -> bool:
        """Whether `_native` applies to x (the CPU, float32, enough rows, built)."""
        pw1, pw2 = self.pointwise_conv1, self.pointwise_conv2
        return self.norm_type == "batch_norm" and cpu_convolution.usable(
            x, pw1.weight, self.depthwise_conv.weight, pw2.weight
        )

    def _native(
        self, x: mx.array, pad_mask: mx.array | None, packed: PackedRows | None = None
    ) -> mx.array | None:
        """The module as `cpu_convolution`'s one native call, or None where it does not
        apply (not the CPU, not float32, few rows, inside `mx.compile`)."""
        pw1, pw2 = self.pointwise_conv1, self.pointwise_conv2
        if not self.native_usable(x):
            return None
        return cpu_convolution.convolution(
            x,
            pad_mask,
            (pw1.weight.reshape(pw1.weight.shape[0], -1), pw1.get("bias")),
            (*self._depthwise_weights(x.dtype), self.left),
            self._batch_norm_affine(),
            (pw2.weight.reshape(pw2.weight.shape[0], -1), pw2.get("bias")),
            packed,
        )


@mx.compile
def _glu(x: mx.array) -> mx.array:
    """GLU of an unpadded batch: no mask input, whose broadcast would send the fused loop
    down MLX's slower strided path."""
    a, gate = mx.split(x, 2, axis=-1)
    return a * fastmath.sigmoid(gate)


@mx.compile
def _masked_glu(x: mx.array, pad_mask: mx.array) -> mx.array:
    """GLU, then padded frames zeroed (as NeMo, so they never leak into valid frames)."""
    a, gate = mx.split(x, 2, axis=-1)
    return mx.where(pad_mask[..., None], 0.0, a * fastmath.sigmoid(gate))


@mx.compile
def _depthwise(
    padded: mx.array, weight: mx.array, bias: mx.array, scale: mx.array, shift: mx.array
) -> mx.array:
    """Depthwise convolution of already padded (B, T + taps - 1, C) inputs, then a
    per-channel affine map.

    Elementwise operations only (the convolution is a sum of shifted copies), which
    `mx.compile` fuses into one pass; MLX's grouped convolution is slower on the CPU.
    """
    time = padded.shape[1] - weight.shape[0] + 1
    out = padded[:, 0:time] * weight[0]
    for tap in range(1, weight.shape[0]):
        out = out + padded[:, tap : tap + time] * weight[tap]
    return (out + bias) * scale + shift


def _pointwise(conv: nn.Conv1d, x: mx.array) -> mx.array:
    """A kernel-1 convolution is a matmul with the (out, in) weight (the bias added by the
    matmul itself: one pass over the output fewer)."""
    weight = conv.weight.reshape(conv.weight.shape[0], -1)
    return mx.addmm(conv.bias, x, weight.T) if "bias" in conv else x @ weight.T


class ConformerLayer(nn.Module):
    """FF/2, self-attention, convolution, FF/2, layer norm: NeMo's `ConformerLayer`."""

    def __init__(self, config: ConformerConfig) -> None:
        super().__init__()
        d = config.d_model
        local = config.self_attention_model == "rel_pos_local_attn"
        self.norm_feed_forward1 = nn.LayerNorm(d)
        self.feed_forward1 = FeedForward(d, config.d_ff, config.use_bias)
        self.norm_self_att = nn.LayerNorm(d)
        self.self_attn = RelPositionAttention(
            d, config.n_heads, config.use_bias, context=config.att_context, local=local
        )
        self.norm_conv = nn.LayerNorm(d)
        self.conv = ConvolutionModule(config)
        self.norm_feed_forward2 = nn.LayerNorm(d)
        self.feed_forward2 = FeedForward(d, config.d_ff, config.use_bias)
        self.norm_out = nn.LayerNorm(d)

    def __call__(
        self,
        x: mx.array,
        pos_emb: mx.array | SymmetricPositions,
        lengths: mx.array | None,
        pad_mask: mx.array | None,
        mask: mx.array | None = None,
        cache: LayerCache | None = None,
        packed: PackedRows | None = None,
    ) -> mx.array:
        """One layer, offline or one chunk of a stream (`cache`); the arguments are
        `RelPositionAttention`'s and `ConvolutionModule`'s (`packed`: x is packed rows,
        lengths and pad_mask None)."""
        x, h = add_norm(x, None, 1.0, self.norm_feed_forward1)
        x, h = add_norm(x, self.feed_forward1(h, lengths), 0.5, self.norm_self_att)
        x, h = add_norm(x, self.self_attn(h, pos_emb, lengths, mask, cache, packed), 1.0,
                        self.norm_conv)  # fmt: skip
        x, h = add_norm(x, self.conv(h, pad_mask, cache, packed), 1.0, self.norm_feed_forward2)
        return add_norm(x, self.feed_forward2(h, lengths), 0.5, self.norm_out, keep_sum=False)[1]


def add_norm(
    x: mx.array, y: mx.array | None, scale: float, norm: nn.LayerNorm, keep_sum: bool = True
) -> tuple[mx.array | None, mx.array]:
    """The residual stream after a module and its norm for the next: (x + scale * y,
    norm(x + scale * y)), or (x, norm(x)) without y; one native pass on the CPU where
    `cpu_norm` applies (the sum None there when not `keep_sum`)."""
    if cpu_norm.usable(x, norm):
        out = cpu_norm.add_norm(x, y, scale, norm, keep_sum)
        if out is not None:  # None: inside mx.compile
            return out
    if y is not None:
        x = x + (y if scale == 1.0 else scale * y)
    return x, norm(x)
