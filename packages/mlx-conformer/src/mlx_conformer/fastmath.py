"""exp, sigmoid and SiLU that MLX's CPU backend compiles into vectorised loops.

On the CPU, `mx.exp` evaluates element by element through libm: the SiLUs, GLU gates and
softmaxes of a 0.6B FastConformer spend about a third of the encoder's time there. The
same exp written with multiplies, adds and an exponent-bit shift is fused by `mx.compile`
into loops the C++ compiler vectorises (three: MLX fuses at most 11 operations deep and
cannot fuse the bit cast): ~4x faster than `mx.exp` on (8, 750, 750), and more accurate
(max relative error 8e-8 against float64, vs ~1e-6). GPUs have fast transcendentals, so
there the plain MLX functions are used.
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn

from . import cpu_attention

_LOG2E = 1.4426950408889634
_ROUND = 12582912.0  # 1.5 * 2^23: (t + _ROUND) - _ROUND rounds t to the nearest integer
_LN2_HI = 0.693145751953125  # ln 2 split in two so that n * ln2 is exact in float32
_LN2_LO = 1.428606765330187045e-06
# Minimax coefficients of exp(r) on |r| <= ln(2) / 2 (Cephes expf).
_P = (
    1.9875691500e-4,
    1.3981999507e-3,
    8.3334519073e-3,
    4.1665795894e-2,
    1.6666665459e-1,
    5.0000001201e-1,
)


def _reduce(x: mx.array, sign: float) -> tuple[mx.array, mx.array]:
    """exp(sign * x) = exp(r) * 2^n: the reduced argument r and the integer-valued n."""
    x = x.astype(mx.float32)
    if sign < 0:
        x = -x
    # Clamped so that 2^n is a normal float32. `where`, not mx.clip: MLX's float minimum and
    # maximum carry NaN checks that stop the compiled loop from vectorising.
    x = mx.where(x < -87.3, -87.3, x)
    x = mx.where(x > 88.0, 88.0, x)
    # Not mx.floor: MLX's CPU JIT compiles for baseline x86-64, where floor is a libm call
    # and stops the loop from vectorising; the float rounding trick needs no call.
    n = (x * _LOG2E + _ROUND) - _ROUND
    r = (x - n * _LN2_HI) - n * _LN2_LO
    return r, n


def _power_of_two(n: mx.array) -> mx.array:
    """2^n for integer-valued n in [-126, 127], as its float32 bit pattern (int32)."""
    return (n.astype(mx.int32) + 127) << 23


def _exp_reduced(r: mx.array, scale: mx.array) -> mx.array:
    """exp(r) * scale, the polynomial in Estrin's form (shallow enough to stay one loop)."""
    r2 = r * r
    inner = (_P[5] + _P[4] * r) + r2 * ((_P[3] + _P[2] * r) + r2 * (_P[1] + _P[0] * r))
    return (inner * r2 + r + 1.0) * scale


_reduce_pos = mx.compile(lambda x: _reduce(x, 1.0))
_reduce_shifted = mx.compile(lambda x, shift: _reduce(x - shift, 1.0))
_reduce_neg = mx.compile(lambda x: _reduce(x, -1.0))
_power_of_two_c = mx.compile(_power_of_two)


@mx.compile
def _exp_tail(r: mx.array, scale: mx.array, like: mx.array) -> mx.array:
    return _exp_reduced(r, scale).astype(like.dtype)


@mx.compile
def _sigmoid_tail(r: mx.array, scale: mx.array, like: mx.array) -> mx.array:
    return (1.0 / (1.0 + _exp_reduced(r, scale))).astype(like.dtype)


@mx.compile
def _silu_tail(r: mx.array, scale: mx.array, x: mx.array) -> mx.array:
    return (x / (1.0 + _exp_reduced(r, scale))).astype(x.dtype)


def _parts(x: mx.array, sign: float, shift: mx.array | None = None) -> tuple[mx.array, mx.array]:
    """(r, 2^n) of exp(sign * x), or of exp(x - shift), in three loops of at most MLX's
    fusion depth.

    One compiled function would be cut by MLX (it fuses at most 11 operations deep) into
    six loops with many intermediate arrays; the bit cast to float cannot be fused at all."""
    if shift is not None:
        r, n = _reduce_shifted(x, shift)
    else:
        r, n = (_reduce_pos if sign > 0 else _reduce_neg)(x)
    return r, mx.view(_power_of_two_c(n), mx.float32)


def _exp_cpu(x: mx.array, shift: mx.array | None = None) -> mx.array:
    return _exp_tail(*_parts(x, 1.0, shift), x)


def _sigmoid_cpu(x: mx.array) -> mx.array:
    return _sigmoid_tail(*_parts(x, -1.0), x)


def _silu_cpu(x: mx.array) -> mx.array:
    return _silu_tail(*_parts(x, -1.0), x)


def on_cpu() -> bool:
    return mx.default_device() == mx.cpu


def exp(x: mx.array, shift: mx.array | None = None) -> mx.array:
    """exp(x - shift); on the CPU the subtraction is fused into the first loop (one pass
    over a softmax's scores fewer)."""
    if not on_cpu():
        return mx.exp(x if shift is None else x - shift)
    return _exp_cpu(x, shift)


def sigmoid(x: mx.array) -> mx.array:
    return _sigmoid_cpu(x) if on_cpu() else mx.sigmoid(x)


def silu(x: mx.array) -> mx.array:
    return _silu_cpu(x) if on_cpu() else nn.silu(x)


def mask_value(dtype: mx.Dtype) -> float:
    """A large finite negative score: masked keys get weight 0 without NaN in empty rows."""
    return -6e4 if dtype == mx.float16 else -1e9


_biased_and_masked = mx.compile(lambda s, bias, keep, fill: mx.where(keep, s + bias, fill))


def _biased(scores: mx.array, bias: mx.array | None, keep: mx.array | None) -> mx.array:
    """(..., T, K) scores + bias, masked keys set to `mask_value`, in one pass.

    A bias of one more dimension, (..., T / b, b, K), holds the scores in query blocks
    (`RelPositionAttention`'s positional scores, a strided view of the blocks' product):
    the scores and `keep` are viewed the same way, so that the bias is never copied.
    """
    shape = scores.shape
    if bias is not None and bias.ndim == scores.ndim + 1:
        blocks = bias.shape[-3:-1]
        scores = scores.reshape(*shape[:-2], *blocks, shape[-1])
        if keep is not None:
            keep = (
                keep.reshape(*keep.shape[:-2], *blocks, shape[-1])
                if keep.shape[-2] == shape[-2]
                else keep[..., None, :, :]
            )
    if keep is None:
        return (scores + bias).reshape(shape)
    fill = mx.array(mask_value(scores.dtype), dtype=scores.dtype)
    if bias is None:
        return mx.where(keep, scores, fill).reshape(shape)
    return _biased_and_masked(scores, bias, keep, fill).reshape(shape)


def _row_max(x: mx.array) -> mx.array:
    """max over the last axis, keepdims, as a reduction along columns first.

    MLX's CPU reduces along a contiguous row element by element but vectorises a reduction
    along columns: the row viewed as (n / c, c) is reduced over its n / c rows of c, then
    over c (9.0 -> 2.6 ms on (8, 768, 750)). Same value: max is exact in any order."""
    n = x.shape[-1]
    if n < 64:
        return mx.max(x, axis=-1, keepdims=True)
    c = 2 * math.isqrt(n)
    whole = n - n % c
    head = x[..., :whole].reshape(*x.shape[:-1], whole // c, c)
    out = mx.max(mx.max(head, axis=-2), axis=-1, keepdims=True)
    return out if whole == n else mx.maximum(out, mx.max(x[..., whole:], axis=-1, keepdims=True))


def softmax_attention(
    q: mx.array,
    k: mx.array,
    v: mx.array,
    scale: float,
    bias: mx.array | None,
    keep: mx.array | None = None,
) -> mx.array:
    """softmax(q k^T * scale + bias) v over the keys `keep` allows (boolean, broadcast to the
    scores), with the fast exp; what SDPA computes, on the CPU.

    The normalisation is applied to the (T, d_head) output rather than the (T, T) weights,
    and the row sums come out of the same matmul (a column of ones appended to v), which
    saves a single-threaded pass over the weights: ~10% of this function's time at T = 750.

    Without a bias, or with one that only masks keys ((..., 1, S)), the scores are made
    keys-by-queries, (..., S, T): the max over the keys is then a reduction along columns,
    which MLX vectorises, where its reduction along rows is a scalar loop (7.3 -> 0.9 ms on
    (8, 750, 750)); the product with v takes the weights transposed (a BLAS flag, no copy).
    With a full bias the scores stay queries-by-keys (a bias's rows are contiguous in the
    keys, as relative positions give them) and the max goes through `_row_max`. The bias,
    the mask and the max's subtraction are fused into the passes they share. Same numbers
    either way.
    """
    ones = mx.ones((*v.shape[:-1], 1), dtype=v.dtype)
    values = mx.concatenate([v, ones], axis=-1)
    key_mask_only = bias is None or (bias.ndim == q.ndim and bias.shape[-2] == 1)
    if keep is None and key_mask_only:
        scores = k @ (q * scale).swapaxes(-1, -2)
        if bias is not None:
            scores = scores + bias.swapaxes(-1, -2)
        weights = exp(scores, mx.max(scores, axis=-2, keepdims=True))
        out = weights.swapaxes(-1, -2) @ values
    else:
        scores = _biased((q * scale) @ k.swapaxes(-1, -2), bias, keep)
        weights = exp(scores, _row_max(scores))
        out = weights @ values
    return out[..., :-1] / out[..., -1:]


def attention(
    q: mx.array,
    k: mx.array,
    v: mx.array,
    scale: float,
    bias: mx.array | None,
    keep: mx.array | None = None,
) -> mx.array:
    """Scaled dot-product attention: MLX's fused kernel on GPUs, `softmax_attention` on CPU;
    there, from `cpu_attention.MIN_KEYS` keys in float32 with at most a bias per key (a
    Transformer's padding), the native pass of `cpu_attention` on every core instead.

    `bias` and `keep` as `softmax_attention` takes them (a bias in query blocks is copied
    into rows for the GPU's kernel). Halving the heads over two MLX streams (two CPU
    threads) was tried: two `exp`s on two streams run 1.7x faster than on one, but whole
    forwards gained nothing (Sortformer 60 s 2.97 vs 2.98 s, a 0.6b-geometry encoder on
    60 s 7.11 vs 7.06 s, idle, 2026-12-04)."""
    if on_cpu():
        per_key = bias is None or (bias.ndim == 4 and bias.shape[1:3] == (1, 1))  # (B, 1, 1, K)
        extra = () if bias is None else (bias,)
        if (
            keep is None
            and per_key
            and q.ndim == 4
            and cpu_attention.usable(q, k, v, *extra, keys=k.shape[-2])
        ):
            out = cpu_attention.plain_attention(q, k, v, scale, bias)
            if out is not None:  # None: inside mx.compile
                return out
        return softmax_attention(q, k, v, scale, bias, keep)
    if bias is not None and bias.ndim == q.ndim + 1:
        bias = bias.reshape(*bias.shape[:-3], -1, bias.shape[-1])
    if keep is not None:  # MLX's kernel takes a boolean mask or an additive one, not both
        bias = keep if bias is None else mx.where(keep, bias, mask_value(bias.dtype))
    return mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=bias)
