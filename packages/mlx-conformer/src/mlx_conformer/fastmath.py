"""exp, sigmoid and SiLU that MLX's CPU backend compiles into vectorised loops.

On the CPU, `mx.exp` evaluates element by element through libm: the SiLUs, GLU gates and
softmaxes of a 0.6B FastConformer spend about a third of the encoder's time there. The
same exp written with multiplies, adds and an exponent-bit shift is fused by `mx.compile`
into one loop the C++ compiler vectorises: ~6x faster on (750, 4096), and more accurate
(max relative error 8e-8 against float64, vs ~1e-6 for `mx.exp`). GPUs have fast
transcendentals, so there the plain MLX functions are used.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

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


def _exp_poly(x: mx.array) -> mx.array:
    x = mx.clip(x.astype(mx.float32), -87.3, 88.0)  # keep 2^n a normal float32
    # Not mx.floor: MLX's CPU JIT compiles for baseline x86-64, where floor is a libm call
    # and stops the loop from vectorising; the float rounding trick needs no call.
    n = (x * _LOG2E + _ROUND) - _ROUND
    r = (x - n * _LN2_HI) - n * _LN2_LO
    p = _P[0]
    for c in _P[1:]:
        p = p * r + c
    p = p * r * r + r + 1.0
    scale = mx.view((n.astype(mx.int32) + 127) << 23, mx.float32)  # 2^n
    return p * scale


@mx.compile
def _exp_cpu(x: mx.array) -> mx.array:
    return _exp_poly(x).astype(x.dtype)


@mx.compile
def _sigmoid_cpu(x: mx.array) -> mx.array:
    return (1.0 / (1.0 + _exp_poly(-x))).astype(x.dtype)


@mx.compile
def _silu_cpu(x: mx.array) -> mx.array:
    return (x / (1.0 + _exp_poly(-x))).astype(x.dtype)


def on_cpu() -> bool:
    return mx.default_device() == mx.cpu


def exp(x: mx.array) -> mx.array:
    return _exp_cpu(x) if on_cpu() else mx.exp(x)


def sigmoid(x: mx.array) -> mx.array:
    return _sigmoid_cpu(x) if on_cpu() else mx.sigmoid(x)


def silu(x: mx.array) -> mx.array:
    return _silu_cpu(x) if on_cpu() else nn.silu(x)


def softmax_attention(
    q: mx.array, k: mx.array, v: mx.array, scale: float, bias: mx.array | None
) -> mx.array:
    """softmax(q k^T * scale + bias) v, with the fast exp; what SDPA computes, on the CPU.

    The normalisation is applied to the (T, d_head) output rather than the (T, T) weights,
    and the row sums come out of the same matmul (a column of ones appended to v), which
    saves a single-threaded pass over the weights: ~10% of this function's time at T = 750.
    """
    scores = (q * scale) @ k.swapaxes(-1, -2)
    if bias is not None:
        scores = scores + bias
    weights = exp(scores - mx.max(scores, axis=-1, keepdims=True))
    ones = mx.ones((*v.shape[:-1], 1), dtype=v.dtype)
    out = weights @ mx.concatenate([v, ones], axis=-1)
    return out[..., :-1] / out[..., -1:]


def attention(
    q: mx.array, k: mx.array, v: mx.array, scale: float, bias: mx.array | None
) -> mx.array:
    """Scaled dot-product attention: MLX's fused kernel on GPUs, `softmax_attention` on CPU."""
    if on_cpu():
        return softmax_attention(q, k, v, scale, bias)
    return mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=bias)
