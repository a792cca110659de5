"""The native CPU attention (`cpu_attention.py`): against float64, and as the layer uses it."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlx_conformer import cpu_attention
from mlx_conformer.attention import RelPositionAttention
from mlx_conformer.positional import SymmetricPositions

pytestmark = pytest.mark.skipif(
    mx.default_device() != mx.cpu, reason="the native pass is the CPU's attention"
)


def _reference(q_u, q_v, k, v, positions, scale, keep, lengths) -> np.ndarray:
    """float64: score(i, j) = scale (q_u[i] . k[j] + q_v[i] . positions[i + K - 1 - j]),
    masked scores -1e9 (a row with no key kept averages the values), softmax, times v; query
    rows past an item's length are zeros (NeMo's softmax masked_fill(mask, 0))."""
    q_u, q_v, k, v, positions = (
        np.asarray(a, dtype=np.float64) for a in (q_u, q_v, k, v, positions)
    )
    batch, heads, time, _ = q_u.shape
    keys = k.shape[2]
    index = np.arange(time)[:, None] + keys - 1 - np.arange(keys)[None, :]  # (T, K)
    allowed = np.ones((batch, time, keys), dtype=bool)
    if keep is not None:
        allowed &= np.broadcast_to(np.asarray(keep), (batch, time, keys))
    if lengths is not None:
        for b, n in enumerate(np.asarray(lengths)):
            allowed[b, n:, :] = False
            allowed[b, :, n:] = False
    out = np.empty_like(q_u)
    for b in range(batch):
        for h in range(heads):
            content = q_u[b, h] @ k[b, h].T
            positional = np.einsum("td,tkd->tk", q_v[b, h], positions[h][index])
            scores = np.where(allowed[b], scale * (content + positional), -1e9)
            weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
            out[b, h] = (weights / weights.sum(axis=-1, keepdims=True)) @ v[b, h]
    if lengths is not None:
        for b, n in enumerate(np.asarray(lengths)):
            out[b, :, n:] = 0.0
    return out


def _inputs(batch: int, heads: int, time: int, keys: int, d_head: int, seed: int):
    rng = np.random.default_rng(seed)
    q_u, q_v = (rng.standard_normal((batch, heads, time, d_head)).astype(np.float32) for _ in "uv")
    k, v = (rng.standard_normal((batch, heads, keys, d_head)).astype(np.float32) for _ in "kv")
    positions = rng.standard_normal((heads, time + keys - 1, d_head)).astype(np.float32)
    return q_u, q_v, k, v, positions, rng


@pytest.mark.parametrize(
    "case", ["lengths", "mask per item", "one mask", "cached keys", "empty rows"]
)
def test_equals_float64(case: str) -> None:
    assert cpu_attention.usable(mx.zeros(1), keys=cpu_attention.MIN_KEYS), (
        "the native library did not build (C compiler, OpenBLAS)"
    )
    time, keys = 300, 300 + (70 if case == "cached keys" else 0)  # not a multiple of 64 rows
    q_u, q_v, k, v, positions, rng = _inputs(2, 3, time, keys, 16, seed=len(case))
    keep, lengths = None, None
    if case == "lengths":
        lengths = np.array([time, 211], dtype=np.int32)
    elif case in ("mask per item", "empty rows"):
        keep = rng.random((2, time, keys)) < 0.7
        if case == "empty rows":
            keep[1, 5] = False  # a query that may see no key
            keep[0, 100:] = False
    elif case == "one mask":  # (T, K), as a limited context gives
        keep = np.abs(np.arange(time)[:, None] - np.arange(keys)[None, :]) <= 40
    else:
        keep = rng.random((1, time, keys)) < 0.9
    ours = cpu_attention.full_attention(
        *(mx.array(a) for a in (q_u, q_v, k, v, positions)),
        0.25,
        None if keep is None else mx.array(keep),
        None if lengths is None else mx.array(lengths),
    )
    expected = _reference(q_u, q_v, k, v, positions, 0.25, keep, lengths)
    error = np.abs(np.array(ours) - expected).max() / np.abs(expected).max()
    assert error < 2e-6


def test_padded_frames_are_never_read() -> None:
    # A padded item costs its own length: its frames past `lengths` are neither queries nor
    # keys (NaN there would reach every valid row through a masked key's tiny weight).
    time = 300
    q_u, q_v, k, v, positions, _ = _inputs(2, 2, time, time, 16, seed=3)
    lengths = np.array([time, 150], dtype=np.int32)
    expected = _reference(q_u, q_v, k, v, positions, 0.25, None, lengths)
    for a in (q_u, q_v, k, v):
        a[1, :, 150:] = np.nan
    ours = cpu_attention.full_attention(
        *(mx.array(a) for a in (q_u, q_v, k, v, positions)), 0.25, None, mx.array(lengths)
    )
    ours = np.array(ours)
    assert np.isfinite(ours).all()
    assert (ours[1, :, 150:] == 0).all()
    error = np.abs(ours - expected).max() / np.abs(expected).max()
    assert error < 2e-6


def _layer_and_input(time: int):
    mx.random.seed(2)
    layer = RelPositionAttention(64, 4)
    layer.pos_bias_u = mx.random.normal((4, 16)) * 0.3
    layer.pos_bias_v = mx.random.normal((4, 16)) * 0.3
    x = mx.random.normal((2, time, 64))
    half = mx.random.normal((time, 32))
    return layer, x, SymmetricPositions(mx.sin(half), mx.cos(half))


def test_layer_equals_the_mlx_path(monkeypatch) -> None:
    layer, x, positions = _layer_and_input(cpu_attention.MIN_KEYS + 21)
    lengths = mx.array([x.shape[1], 200])
    native = np.array(layer(x, positions, lengths))
    monkeypatch.setenv("MLX_CONFORMER_NATIVE", "off")
    mlx_path = np.array(layer(x, positions, lengths))
    for item, n in enumerate([x.shape[1], 200]):
        np.testing.assert_allclose(native[item, :n], mlx_path[item, :n], rtol=1e-5, atol=1e-5)


def test_inside_mx_compile_the_mlx_path_runs() -> None:
    layer, x, positions = _layer_and_input(cpu_attention.MIN_KEYS)
    eager = np.array(layer(x, positions))
    compiled = mx.compile(lambda inputs: layer(inputs, positions))
    np.testing.assert_allclose(np.array(compiled(x)), eager, rtol=1e-5, atol=1e-5)


def test_short_inputs_and_other_dtypes_keep_the_mlx_path() -> None:
    small = mx.zeros((1, 1, 4, 8))
    assert not cpu_attention.usable(small, keys=cpu_attention.MIN_KEYS - 1)
    assert not cpu_attention.usable(small.astype(mx.bfloat16), keys=cpu_attention.MIN_KEYS)


@pytest.mark.parametrize("padded", [False, True])
def test_plain_attention_equals_float64(padded: bool) -> None:
    # A Transformer's attention: no positional term, padded keys masked additively per item.
    q, _, k, v, _, _ = _inputs(2, 4, 280, 280, 24, seed=7)
    key_bias = np.zeros((2, 1, 1, 280), dtype=np.float32)
    if padded:
        key_bias[1, ..., 190:] = -10000.0  # NeMo's `form_attention_mask` value
    ours = cpu_attention.plain_attention(
        mx.array(q), mx.array(k), mx.array(v), 0.2, mx.array(key_bias) if padded else None
    )
    q64, k64, v64 = (a.astype(np.float64) for a in (q, k, v))
    scores = 0.2 * q64 @ k64.swapaxes(-1, -2) + key_bias
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    expected = (weights / weights.sum(axis=-1, keepdims=True)) @ v64
    error = np.abs(np.array(ours) - expected).max() / np.abs(expected).max()
    assert error < 2e-6


def test_fastmath_attention_takes_the_native_pass_for_long_plain_inputs(monkeypatch) -> None:
    from mlx_conformer import fastmath

    q, _, k, v, _, _ = _inputs(1, 2, 300, 300, 16, seed=8)
    key_bias = np.zeros((1, 1, 1, 300), dtype=np.float32)
    key_bias[..., 250:] = -10000.0
    inputs = [mx.array(a) for a in (q, k, v)]
    native = cpu_attention.plain_attention(*inputs, 0.25, mx.array(key_bias))
    through = fastmath.attention(*inputs, 0.25, mx.array(key_bias))
    np.testing.assert_array_equal(np.array(through), np.array(native))
    monkeypatch.setenv("MLX_CONFORMER_NATIVE", "off")
    mlx_path = fastmath.attention(*inputs, 0.25, mx.array(key_bias))
    np.testing.assert_allclose(np.array(mlx_path), np.array(native), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["lengths", "mask per item", "packed"])
def test_rows_layout_equals_float64(case: str) -> None:
    """The projections as they come, (B, T, H * d), the heads' biases added in the kernel."""
    from mlx_conformer.packing import PackedRows

    heads, d_head, time = 3, 16, 300
    q, _, k, v, positions, rng = _inputs(2, heads, time, time, d_head, seed=7 + len(case))
    bias_u, bias_v = (rng.standard_normal((heads, d_head)).astype(np.float32) for _ in "uv")
    q_u, q_v = q + bias_u[None, :, None], q + bias_v[None, :, None]
    keep, lengths = None, np.array([time, 211], dtype=np.int32)
    if case == "mask per item":
        keep, lengths = rng.random((2, time, time)) < 0.7, None
    expected = _reference(q_u, q_v, k, v, positions, 0.25, keep, lengths)

    def frames(a: np.ndarray) -> np.ndarray:  # (B, H, T, d) -> (B, T, H * d)
        return a.transpose(0, 2, 1, 3).reshape(2, time, heads * d_head)

    packed = None
    rows = [frames(a) for a in (q, k, v)]
    if case == "packed":
        packed = PackedRows.of(lengths, time)
        rows = [np.concatenate([r[0], r[1, :211]])[None] for r in rows]
    ours = cpu_attention.full_attention_rows(
        *(mx.array(a) for a in rows), mx.array(bias_u), mx.array(bias_v), mx.array(positions),
        0.25, None if keep is None else mx.array(keep),
        None if lengths is None or packed is not None else mx.array(lengths), packed,
    )  # fmt: skip
    ours = np.array(ours)
    if packed is not None:  # back to the padded batch, zeros past each item's length
        padded = np.zeros((2, time, heads * d_head), dtype=np.float32)
        padded[0], padded[1, :211] = ours[0, :time], ours[0, time:]
        ours = padded
    got = ours.reshape(2, time, heads, d_head).transpose(0, 2, 1, 3)
    error = np.abs(got - expected).max() / np.abs(expected).max()
    assert error < 2e-6


def test_layer_with_a_mask_equals_the_mlx_path(monkeypatch) -> None:
    layer, x, positions = _layer_and_input(cpu_attention.MIN_KEYS + 21)
    time = x.shape[1]
    keep = mx.array(np.abs(np.arange(time)[:, None] - np.arange(time)[None, :]) <= 30)[None]
    keep = mx.concatenate([keep, mx.zeros_like(keep)])  # an item whose queries see no key
    native = np.array(layer(x, positions, None, keep))
    monkeypatch.setenv("MLX_CONFORMER_NATIVE", "off")
    np.testing.assert_allclose(
        native, np.array(layer(x, positions, None, keep)), rtol=1e-5, atol=1e-5
    )
