"""The CPU's exp, sigmoid, SiLU and attention (`mlx_conformer.fastmath`) against float64."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_conformer import fastmath


@pytest.fixture(autouse=True)
def _cpu():
    with mx.stream(mx.cpu):
        yield


def _arguments() -> mx.array:
    rng = np.random.default_rng(0)
    grid = np.linspace(-87.0, 88.0, 100_003)
    return mx.array(np.concatenate([grid, rng.normal(0, 5, 50_000)]).astype(np.float32))


def test_exp_within_a_few_ulp_of_float64():
    x = _arguments()
    got = np.array(fastmath.exp(x)).astype(np.float64)
    want = np.exp(np.array(x).astype(np.float64))
    assert np.max(np.abs(got - want) / want) < 2e-7


def test_exp_of_masked_scores_is_negligible_and_finite():
    """Masked keys (NeMo adds -10000; -inf elsewhere) weigh at most exp(-87.3) ~ 1.2e-38."""
    got = np.array(fastmath.exp(mx.array([-1e4, -np.inf, -87.3, 0.0], dtype=mx.float32)))
    assert np.all(np.isfinite(got))
    assert np.all(got[:3] < 1.3e-38)
    assert got[3] == 1.0


def test_sigmoid_and_silu_match_float64():
    x = _arguments()
    x64 = np.array(x).astype(np.float64)
    sigmoid = 1.0 / (1.0 + np.exp(-x64))
    assert np.max(np.abs(np.array(fastmath.sigmoid(x)) - sigmoid)) < 2e-7
    silu = np.array(fastmath.silu(x)).astype(np.float64)
    assert np.max(np.abs(silu - x64 * sigmoid) / np.maximum(np.abs(x64 * sigmoid), 1e-30)) < 2e-6


def _reference_attention(q, k, v, scale, bias) -> np.ndarray:
    q, k, v = (np.array(a).astype(np.float64) for a in (q, k, v))
    scores = q @ k.swapaxes(-1, -2) * scale + np.array(bias).astype(np.float64)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return (weights / weights.sum(-1, keepdims=True)) @ v


@pytest.mark.parametrize("bias_shape", [None, (2, 1, 1, 96), (2, 4, 96, 96)])
def test_softmax_attention_in_both_layouts_equals_float64(bias_shape):
    """Keys-by-queries scores (no bias, or a key mask) and queries-by-keys (a full bias)."""
    rng = np.random.default_rng(2)
    q, k, v = (mx.array(rng.normal(size=(2, 4, 96, 16)).astype(np.float32)) for _ in range(3))
    bias = None
    if bias_shape is not None:
        values = rng.normal(size=bias_shape).astype(np.float32)
        values[1, ..., 70:] = -10000.0  # padded keys of the second item
        bias = mx.array(values)
    got = np.array(fastmath.softmax_attention(q, k, v, 0.25, bias))
    zero = mx.zeros((1, 1, 1, 1))
    want = _reference_attention(q, k, v, 0.25, zero if bias is None else bias)
    assert np.max(np.abs(got - want)) < 1e-5


@pytest.mark.parametrize("keep_shape", [None, (2, 1, 96, 96), (96, 96), (2, 1, 1, 96)])
def test_softmax_attention_with_blocked_bias_and_mask_equals_float64(keep_shape):
    """A bias in query blocks (a strided view, as relative positions give it) and a boolean
    mask of the keys each query may see, fused into one pass: the same as bias rows and an
    additive mask."""
    rng = np.random.default_rng(3)
    q, k, v = (mx.array(rng.normal(size=(2, 4, 96, 16)).astype(np.float32)) for _ in range(3))
    rows = rng.normal(size=(2, 4, 96, 96)).astype(np.float32)
    # The (4 blocks, 24 rows, 96 keys) bias, given as a strided view of a wider product.
    wide = np.zeros((2, 4, 96, 120), dtype=np.float32)
    wide[..., :96] = rows
    blocked = mx.as_strided(
        mx.array(wide), (2, 4, 4, 24, 96), (4 * 96 * 120, 96 * 120, 24 * 120, 120, 1)
    )
    assert np.array_equal(np.array(blocked).reshape(rows.shape), rows)
    keep = None
    additive = rows.copy()
    if keep_shape is not None:
        allowed = rng.random(keep_shape) > 0.3
        allowed[..., 0] = True  # every query sees at least one key
        keep = mx.array(allowed)
        additive = np.where(np.broadcast_to(allowed, rows.shape), rows, -np.inf)
    got = np.array(fastmath.softmax_attention(q, k, v, 0.25, blocked, keep))
    want = _reference_attention(q, k, v, 0.25, additive)
    assert np.max(np.abs(got - want)) < 1e-5


@pytest.mark.parametrize("keys", [5, 63, 64, 750, 751, 1500])
def test_row_max_equals_max(keys):
    x = mx.array(np.random.default_rng(keys).normal(size=(3, 7, keys)).astype(np.float32))
    assert np.array_equal(np.array(fastmath._row_max(x)), np.array(x).max(-1, keepdims=True))


def test_gpu_branch_takes_blocked_bias_and_mask(monkeypatch):
    """`attention`'s branch for GPUs (MLX's SDPA, which runs on the CPU too): the blocked bias
    is copied into rows and the mask folded into it."""
    rng = np.random.default_rng(4)
    q, k, v = (mx.array(rng.normal(size=(1, 2, 32, 8)).astype(np.float32)) for _ in range(3))
    rows = rng.normal(size=(1, 2, 32, 32)).astype(np.float32)
    allowed = rng.random((1, 1, 32, 32)) > 0.3
    allowed[..., 0] = True
    blocked = mx.array(rows).reshape(1, 2, 4, 8, 32)
    monkeypatch.setattr(fastmath, "on_cpu", lambda: False)
    got = np.array(fastmath.attention(q, k, v, 0.5, blocked, mx.array(allowed)))
    want = _reference_attention(q, k, v, 0.5, np.where(allowed, rows, -np.inf))
    assert np.max(np.abs(got - want)) < 1e-5
