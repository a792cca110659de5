"""Cache-aware streaming of NeMo's FastConformer, as `ConformerEncoder.cache_aware_stream_step`.

NeMo's streaming checkpoints (causal subsampling, `att_context_style: chunked_limited`,
causal convolutions, several `att_context_size` lookaheads) encode audio chunk by chunk with
three caches per layer:

- `last_channel` (layers, B, C, D): the last C attention inputs (C = left context), which
  the next chunk's queries attend to as extra keys and values;
- `last_time` (layers, B, K - 1, D): the last inputs of each depthwise convolution;
- `last_channel_len` (B,): how many of the C cached frames are real (the rest are masked).

`streaming_config` reproduces `setup_streaming_params` (chunk and shift sizes in feature
frames, the pre-encode cache, `drop_extra_pre_encoded`), `cache_aware_step` one call of
`cache_aware_stream_step`, and `CacheAwareStreamer` the chunking of NeMo's
`CacheAwareStreamingAudioBuffer`, fed with feature frames as they arrive. `dense_forward`
is NeMo's forward without caches for any attention style (chunked_limited included).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .positional import sinusoids

_MASKED = -10000.0  # NeMo's INF_VAL, the score of a masked key before softmax


@dataclass(frozen=True)
class StreamingConfig:
    """NeMo's `CacheAwareStreamingConfig`; sizes in feature frames unless noted.

    `chunk_size`, `shift_size` and `pre_encode_cache_size` are (first step, later steps).
    `valid_out_len` and `last_channel_cache_size` are in encoder frames.
    """

    att_context: tuple[int, int]
    chunk_size: tuple[int, int]
    shift_size: tuple[int, int]
    cache_drop_size: int
    last_channel_cache_size: int
    valid_out_len: int
    pre_encode_cache_size: tuple[int, int]
    drop_extra_pre_encoded: int
    sampling_frames: tuple[int, int]
    style: str = "chunked_limited"


def streaming_config(encoder, att_context=None, max_context: int = 10000) -> StreamingConfig:
    """`setup_streaming_params()` for one (left, right) context (default: the first)."""
    cfg = encoder.config
    left, right = tuple(att_context) if att_context is not None else cfg.att_context_sizes[0]
    layers, factor = cfg.n_layers, cfg.subsampling_factor
    if cfg.att_context_style == "chunked_limited":
        lookahead, drop = right, 0
    else:  # regular
        lookahead = right * layers + cfg.conv_context_size[1] * layers
        drop = lookahead
    if lookahead < 0:
        raise ValueError(f"streaming needs a limited right context, got {[left, right]}")
    sampling = (1, factor)
    chunk = (sampling[0] + factor * lookahead, sampling[1] + factor * lookahead)
    shift = (
        sampling[0] + sampling[1] * (lookahead - drop),
        sampling[1] + sampling[1] * (lookahead - drop),
    )
    if cfg.causal_downsampling:
        pre_encode = (0, factor + 1)
        drop_extra = 1 + (pre_encode[1] - 1) // factor
    else:
        pre_encode, drop_extra = (0, 0), 0
    return StreamingConfig(
        att_context=(left, right),
        chunk_size=chunk,
        shift_size=shift,
        cache_drop_size=drop,
        last_channel_cache_size=left if left >= 0 else max_context,
        valid_out_len=(shift[1] - sampling[1]) // factor + 1,
        pre_encode_cache_size=pre_encode,
        drop_extra_pre_encoded=drop_extra,
        sampling_frames=sampling,
        style=cfg.att_context_style,
    )


@dataclass
class StreamCache:
    """The per-layer caches that one stream carries from chunk to chunk (channels-last)."""

    last_channel: mx.array  # (layers, B, C, D)
    last_time: mx.array  # (layers, B, K - 1, D)
    last_channel_len: mx.array  # (B,) int32
    # The attention keys and values of `last_channel`, per layer (H, C, d_head each):
    # NeMo projects the cached inputs again at every step; projecting each frame once
    # gives the same rows (a projection is row by row) at a fraction of the cost.
    keys: list | None = None
    values: list | None = None
    # Set by a `regular`-style step whose chunk had fewer encoder frames than the lookahead
    # its caches drop (a stream's last chunks): the caches then lack frames, and no further
    # step can run on them (NeMo 3.0.0's next step fails on such caches too).
    overdrawn: bool = False

    @classmethod
    def initial(cls, encoder, streaming: StreamingConfig, batch: int = 1) -> StreamCache:
        """`get_initial_cache_state`: zeros, with no cached frame counted as real."""
        cfg = encoder.config
        return cls(
            mx.zeros((cfg.n_layers, batch, streaming.last_channel_cache_size, cfg.d_model)),
            mx.zeros((cfg.n_layers, batch, cfg.conv_context_size[0], cfg.d_model)),
            mx.zeros((batch,), dtype=mx.int32),
        )


def attention_keep(
    style: str, context: tuple[int, int], size: int, rows: slice | None = None
) -> mx.array:
    """(size, size) bool: which key each query may see (NeMo's `_create_masks`, before padding)."""
    left, right = context
    i = mx.arange(size)[:, None]
    j = mx.arange(size)[None, :]
    keep = mx.ones((size, size), dtype=mx.bool_)
    if style == "chunked_limited" and right >= 0:
        chunk = right + 1
        left_chunks = left // chunk if left >= 0 else 10000
        diff = i // chunk - j // chunk
        keep = (diff <= left_chunks) & (diff >= 0)
    else:
        if left >= 0:
            keep = keep & (j - i >= -left)
        if right >= 0:
            keep = keep & (j - i <= right)
    return keep if rows is None else keep[rows]


def _attend(
    attn,
    query: mx.array,
    cache_len: int,
    keep: mx.array,
    cached: tuple[mx.array, mx.array] | None,
    p: mx.array,
) -> tuple[mx.array, mx.array, mx.array]:
    """Relative-position attention of T queries over C cached + T new keys (NeMo's formula).

    Query i sits at absolute position cache_len + i, key j at j: the positional term uses
    relative position cache_len + i - j (what NeMo's `rel_shift` picks from its 2L - 1
    table). Masked keys score -10000 and get weight 0 after the softmax, so a query with no
    visible key (padding) outputs zero before `linear_out`, as in NeMo. `cached` holds the
    keys and values of the C cached inputs (B, H, C, d_head). Returns the output and the
    keys and values of the new frames.
    """
    batch, time, _ = query.shape
    heads, d_head = attn.n_heads, attn.d_head

    def split(x: mx.array) -> mx.array:
        return x.reshape(batch, x.shape[1], heads, d_head).transpose(0, 2, 1, 3)

    q = split(attn.linear_q(query))
    k_new, v_new = split(attn.linear_k(query)), split(attn.linear_v(query))
    if cached is None:
        k, v = k_new, v_new
    else:
        k = mx.concatenate([cached[0], k_new], axis=2)
        v = mx.concatenate([cached[1], v_new], axis=2)
    total = k.shape[2]
    ac = (q + attn.pos_bias_u[None, :, None, :]) @ k.swapaxes(-1, -2)
    bd_all = (q + attn.pos_bias_v[None, :, None, :]) @ p.swapaxes(-1, -2)  # (B, H, T, P)
    index = (time - 1) - mx.arange(time)[:, None] + mx.arange(total)[None, :]
    bd = mx.take_along_axis(bd_all, mx.broadcast_to(index, (batch, heads, time, total)), -1)
    scores = (ac + bd) * attn.scale
    keep = keep[:, None]
    scores = mx.where(keep, scores, _MASKED)
    weights = mx.softmax(scores, axis=-1, precise=True) * keep
    out = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, time, -1)
    return attn.linear_out(out), k_new, v_new


def _positions(attn, cache_len: int, time: int, dtype: mx.Dtype) -> mx.array:
    """(H, P, d_head) projected relative positions cache_len + T - 1 ... -(T - 1).

    The same for every chunk of a stream (one or two shapes), so kept per layer: the
    projection of the table costs as much as the rest of a small chunk's attention.
    """
    cache = attn.__dict__.setdefault("_stream_positions", {})
    key = (cache_len, time, dtype, id(attn.linear_pos.weight))
    if key not in cache:
        positions = np.arange(cache_len + time - 1, -time, -1)
        table = mx.array(sinusoids(positions, attn.linear_pos.weight.shape[1])).astype(dtype)
        p = attn.linear_pos(table).reshape(-1, attn.n_heads, attn.d_head).transpose(1, 0, 2)
        mx.eval(p)
        if len(cache) > 8:
            cache.clear()
        cache[key] = p
    return cache[key]


def _convolve(conv, x: mx.array, pad_mask: mx.array, cache: mx.array | None, drop: int = 0):
    """NeMo's `ConformerConvolution` with an optional `last_time` cache (B, K - 1, D).

    Returns the output and the next cache, as NeMo's `CausalConv1D.update_cache`: the last
    K - 1 frames of cache + input + right padding, before the last `drop` (the style's
    cache_drop_size: 0 for chunked_limited, the lookahead frames for regular).
    """
    weight = conv.pointwise_conv1.weight.reshape(conv.pointwise_conv1.weight.shape[0], -1)
    x = x @ weight.T
    if "bias" in conv.pointwise_conv1:
        x = x + conv.pointwise_conv1.bias
    a, gate = mx.split(x, 2, axis=-1)
    x = mx.where(pad_mask[..., None], 0.0, a * mx.sigmoid(gate))
    left, right = conv.left, conv.right
    if cache is None:
        padded = mx.pad(x, [(0, 0), (left, right), (0, 0)])
        next_cache = None
    else:
        padded = mx.concatenate([cache, mx.pad(x, [(0, 0), (0, right), (0, 0)])], axis=1)
        end = padded.shape[1] - drop
        next_cache = padded[:, end - cache.shape[1] : end]
    dw = conv.depthwise_conv
    taps = dw.weight[:, :, 0].T  # (K, D)
    time = x.shape[1]
    out = padded[:, 0:time] * taps[0]
    for tap in range(1, taps.shape[0]):
        out = out + padded[:, tap : tap + time] * taps[tap]
    if "bias" in dw:
        out = out + dw.bias
    norm = conv.batch_norm
    if conv.norm_type == "batch_norm":
        scale = norm.weight * mx.rsqrt(norm.running_var + norm.eps)
        out = out * scale + (norm.bias - norm.running_mean * scale)
    else:
        out = norm(out)
    out = nn.silu(out)
    weight = conv.pointwise_conv2.weight.reshape(conv.pointwise_conv2.weight.shape[0], -1)
    out = out @ weight.T
    if "bias" in conv.pointwise_conv2:
        out = out + conv.pointwise_conv2.bias
    return out, next_cache


def _projected(attn, inputs: mx.array) -> tuple[mx.array, mx.array]:
    """Keys and values (B, H, C, d_head) of cached attention inputs (B, C, D)."""
    batch, size, _ = inputs.shape

    def split(x: mx.array) -> mx.array:
        return x.reshape(batch, size, attn.n_heads, attn.d_head).transpose(0, 2, 1, 3)

    return split(attn.linear_k(inputs)), split(attn.linear_v(inputs))


def _layer(layer, x, keep, pad_mask, caches, p, cache_len, keep_frames):
    """One `ConformerLayer` with caches (last_channel, last_time, keys, values) or None.

    Returns x and the next caches.
    """
    channel_cache, time_cache, keys, values = caches or (None, None, None, None)
    x = x + 0.5 * layer.feed_forward1(layer.norm_feed_forward1(x))
    query = layer.norm_self_att(x)
    cached = None if channel_cache is None else (keys, values)
    attended, k_new, v_new = _attend(layer.self_attn, query, cache_len, keep, cached, p)
    x = x + attended
    drop = x.shape[1] - keep_frames
    conv_out, next_time = _convolve(layer.conv, layer.norm_conv(x), pad_mask, time_cache, drop)
    x = x + conv_out
    x = x + 0.5 * layer.feed_forward2(layer.norm_feed_forward2(x))
    if channel_cache is None:
        return layer.norm_out(x), None
    size = channel_cache.shape[1]

    def last(cache: mx.array, new: mx.array, axis: int) -> mx.array:
        grown = mx.concatenate([cache, new], axis=axis)
        start = grown.shape[axis] - size
        return grown[:, start:] if axis == 1 else grown[:, :, start:]

    next_channel = last(channel_cache, query[:, :keep_frames], 1)
    next_keys = last(keys, k_new[:, :, :keep_frames], 2)
    next_values = last(values, v_new[:, :, :keep_frames], 2)
    return layer.norm_out(x), (next_channel, next_time, next_keys, next_values)


def _masks(style, context, lengths, time, cache_len, offset):
    """(B, T, C + T) key mask and (B, T) padding mask of the chunk's queries."""
    size = time + cache_len
    positions = mx.arange(size)[None, :]
    valid = positions < (lengths + cache_len)[:, None]
    if offset is not None:
        valid = valid & (positions >= offset[:, None])
    keep = attention_keep(style, context, size)[None] & valid[:, :, None] & valid[:, None, :]
    return keep[:, cache_len:], ~valid[:, cache_len:]


def _run_layers(encoder, x, lengths, style, context, cache, cache_len, keep_frames):
    """All layers, with or without caches.

    (`mx.compile` of the stack was tried: it takes seconds per chunk shape on the CPU, which
    a live stream would pay on its first chunks, for a gain lost in the measurement noise.)
    """
    time = x.shape[1]
    offset = None if cache is None else cache_len - cache.last_channel_len
    keep, pad_mask = _masks(style, context, lengths, time, cache_len, offset)
    positions = [_positions(layer.self_attn, cache_len, time, x.dtype) for layer in encoder.layers]
    if cache is None:
        run = _layers_function(encoder, cache_len, keep_frames)
        caches = [None] * len(encoder.layers)
    else:
        run = _layers_function(encoder, cache_len, keep_frames)
        keys, values = cache.keys, cache.values
        if keys is None:  # a fresh cache: project its inputs once
            projected = [_projected(layer.self_attn, cache.last_channel[i])
                         for i, layer in enumerate(encoder.layers)]  # fmt: skip
            keys, values = [k for k, _ in projected], [v for _, v in projected]
        caches = [
            (cache.last_channel[i], cache.last_time[i], keys[i], values[i])
            for i in range(len(encoder.layers))
        ]
    x, next_caches = run(x, keep, pad_mask, caches, positions)
    if "out_proj" in encoder:
        x = encoder.out_proj(x)
    return x, next_caches


def _layers_function(encoder, cache_len: int, keep_frames: int):
    def run(x, keep, pad_mask, caches, positions):
        out = []
        for layer, caches_i, p in zip(encoder.layers, caches, positions, strict=True):
            x, caches_i = _layer(layer, x, keep, pad_mask, caches_i, p, cache_len, keep_frames)
            out.append(caches_i)
        return x, out

    return run


def dense_forward(encoder, features: mx.array, lengths: mx.array | None = None, context=None):
    """NeMo's forward without caches, with the attention style's full (T, T) mask.

    The path for chunked_limited (cache-aware) models encoded offline; memory is
    quadratic in the length, which cache-aware streaming avoids.
    """
    cfg = encoder.config
    context = tuple(context) if context is not None else cfg.att_context
    if lengths is None:
        lengths = mx.full((features.shape[0],), features.shape[1], dtype=mx.int32)
    x, lengths = encoder.pre_encode(features, lengths)
    if encoder._xscale is not None:
        x = x * encoder._xscale
    x, _ = _run_layers(encoder, x, lengths, cfg.att_context_style, context, None, 0, 0)
    return x, lengths


def cache_aware_step(
    encoder,
    features: mx.array,
    lengths: mx.array,
    cache: StreamCache,
    streaming: StreamingConfig,
    keep_all_outputs: bool = False,
    drop_extra_pre_encoded: int | None = None,
) -> tuple[mx.array, mx.array, StreamCache]:
    """One `cache_aware_stream_step`: features (B, T, F) of a chunk with its pre-encode cache.

    Returns encoder output (B, T', D), its valid lengths and the next cache.
    """
    drop = (
        streaming.drop_extra_pre_encoded
        if drop_extra_pre_encoded is None
        else drop_extra_pre_encoded
    )
    x, lengths = encoder.pre_encode(features, lengths.astype(mx.int32))
    if drop > 0:
        x = x[:, drop:]
        lengths = mx.maximum(lengths - drop, 0)
    if encoder._xscale is not None:
        x = x * encoder._xscale
    time = x.shape[1]
    cache_len = streaming.last_channel_cache_size
    if cache.overdrawn:
        raise ValueError(
            f"regular-style cache-aware streaming with context {list(streaming.att_context)}: "
            f"a chunk had fewer encoder frames than the {streaming.cache_drop_size} its caches "
            "drop (the lookahead, right context x layers), so no step can follow it (NeMo's "
            "streaming fails there too)"
        )
    keep_frames = time - streaming.cache_drop_size
    x, caches = _run_layers(
        encoder, x, lengths, streaming.style, streaming.att_context, cache, cache_len, keep_frames
    )
    if streaming.valid_out_len > 0 and (not keep_all_outputs or streaming.style == "regular"):
        x = x[:, : streaming.valid_out_len]
        lengths = mx.minimum(lengths, streaming.valid_out_len)
    channels, times, keys, values = zip(*caches, strict=True)
    next_cache = StreamCache(
        mx.stack(channels),
        mx.stack(times),
        mx.minimum(cache.last_channel_len + keep_frames, cache_len).astype(mx.int32),
        list(keys),
        list(values),
        overdrawn=keep_frames < 0,
    )
    return x, lengths, next_cache


@dataclass
class CacheAwareStreamer:
    """Feature frames in, encoder frames out, chunked as NeMo's `CacheAwareStreamingAudioBuffer`.

    `add(frames)` appends (T, F) feature frames and returns the encoder frames of every
    chunk that is complete; `finish()` runs what is left as NeMo does at the end of a
    buffer (the last chunk keeps all its outputs; a tail shorter than one subsampling step
    is dropped, as NeMo drops it). One stream (batch 1).
    """

    encoder: object
    streaming: StreamingConfig
    _buffer: list = field(default_factory=list)
    _frames: int = 0
    _index: int = 0
    _step: int = 0
    cache: StreamCache | None = None
    _done: bool = False

    def __post_init__(self) -> None:
        self.cache = StreamCache.initial(self.encoder, self.streaming)

    def add(self, frames: mx.array | np.ndarray) -> mx.array:
        frames = mx.array(frames, dtype=mx.float32)
        if frames.shape[0]:
            self._buffer.append(frames)
            self._frames += frames.shape[0]
        return self._run(final=False)

    def finish(self) -> mx.array:
        out = self._run(final=True)
        self._done = True
        return out

    def _features(self) -> mx.array:
        if len(self._buffer) > 1:
            self._buffer = [mx.concatenate(self._buffer)]
        return self._buffer[0]

    def _run(self, final: bool) -> mx.array:
        if self._done:
            raise RuntimeError("the stream is finished")
        cfg = self.streaming
        outputs = []
        while self._index < self._frames:
            first = self._step == 0
            chunk = cfg.chunk_size[0 if first else 1]
            shift = cfg.shift_size[0 if first else 1]
            end = self._index + chunk
            # before the end, a chunk runs once it is whole and known not to be the last
            # (the last keeps extra outputs; chunked_limited outputs do not depend on that)
            waiting = self._frames < end or (
                cfg.style == "regular" and self._frames <= self._index + shift
            )
            if not final and waiting:
                break
            features = self._features()
            piece = features[self._index : end]
            if piece.shape[0] < cfg.sampling_frames[0 if first else 1]:
                self._index = self._frames
                break
            cache_size = cfg.pre_encode_cache_size[0 if first else 1]
            start = max(0, self._index - cache_size)
            before = features[start : self._index]
            zeros = cache_size - before.shape[0]
            parts = [before, piece]
            if zeros > 0:
                parts.insert(0, mx.zeros((zeros, features.shape[1])))
            chunk_features = mx.concatenate(parts)[None]
            length = mx.array([chunk_features.shape[1]], dtype=mx.int32)
            self._index += shift
            last = self._index >= self._frames and final
            out, lengths, self.cache = cache_aware_step(
                self.encoder,
                chunk_features,
                length,
                self.cache,
                cfg,
                keep_all_outputs=last,
                drop_extra_pre_encoded=0 if first else cfg.drop_extra_pre_encoded,
            )
            self._step += 1
            out = out[0, : int(lengths[0])]
            mx.eval(out, self.cache.last_channel, self.cache.last_time, self.cache.keys,
                    self.cache.values)  # fmt: skip
            outputs.append(out)
        if not outputs:
            return mx.zeros((0, self.encoder.config.output_dim))
        return mx.concatenate(outputs) if len(outputs) > 1 else outputs[0]
