"""What a cache-aware stream carries from chunk to chunk: the encoder's `cache=` argument.

As mlx-lm's KV caches, the layers update these in place during their one forward pass
(`Conformer.__call__(..., cache=...)`): attention appends the chunk's keys and values and
attends over cached + new; the convolution module reads its left context from the cache.
NeMo keeps the same state as three tensors (`cache_last_channel`, `cache_last_time`,
`cache_last_channel_len`); `StreamCache.last_channel_len` is the third, and the first is
held here as its projected keys and values: NeMo projects the cached inputs again at every
step, projecting each frame once gives the same rows (a projection is row by row).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import mlx.core as mx


@dataclass
class LayerCache:
    """One layer's state: keys and values (B, H, C, d_head) of its last C attention inputs,
    and the last inputs (B, left, D) of its depthwise convolution.

    `drop` frames at the end of every chunk (the lookahead of the `regular` style, NeMo's
    `cache_drop_size`) are attended to and convolved but never enter the caches.
    """

    keys: mx.array
    values: mx.array
    conv: mx.array
    drop: int = 0
    _positions: dict = field(default_factory=dict, repr=False)

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        """Cached + the chunk's keys and values (what its queries attend to); keeps the last C
        of cached + kept frames for the next chunk."""
        all_keys = mx.concatenate([self.keys, keys], axis=2)
        all_values = mx.concatenate([self.values, values], axis=2)
        size = self.keys.shape[2]
        end = size + max(0, keys.shape[2] - self.drop)
        self.keys = all_keys[:, :, end - size : end]
        self.values = all_values[:, :, end - size : end]
        return all_keys, all_values

    def convolution_inputs(self, x: mx.array, right: int) -> mx.array:
        """The chunk's depthwise inputs (B, T, D) after the cached left context and before
        `right` zeros, as NeMo's `CausalConv1D.update_cache`; keeps the last `left` of them
        before the dropped frames for the next chunk."""
        padded = mx.concatenate([self.conv, mx.pad(x, [(0, 0), (0, right), (0, 0)])], axis=1)
        left = self.conv.shape[1]
        end = left + max(0, x.shape[1] - self.drop) + right
        self.conv = padded[:, end - left : end]
        return padded

    def positions(self, key: tuple, project: Callable[[], mx.array]) -> mx.array:
        """The layer's projected relative positions for a chunk shape, projected once per
        stream (a stream has one or two shapes): that projection costs as much as the rest
        of a small chunk's attention."""
        if key not in self._positions:
            self._positions[key] = project()
        return self._positions[key]


@dataclass
class StreamCache:
    """The encoder's state for a batch of streams: one `LayerCache` per layer, the attention
    context and style the stream runs with, and how many of the C cached frames are real."""

    layers: list[LayerCache]
    last_channel_len: mx.array  # (B,) int32: real frames among the C cached (the rest masked)
    att_context: tuple[int, int]
    style: str
    # Set after a `regular`-style chunk with fewer encoder frames than its caches drop (a
    # stream's last chunks): the caches then lack frames, and no further step can run on
    # them (NeMo 3.0.0's next step fails on such caches too).
    overdrawn: bool = False

    @classmethod
    def initial(cls, encoder, streaming, batch: int = 1) -> StreamCache:
        """NeMo's `get_initial_cache_state` for an encoder and its `StreamingConfig`: zeros,
        with no cached frame counted as real (so their values never matter)."""
        cfg = encoder.config
        heads, d_head = cfg.n_heads, cfg.d_model // cfg.n_heads
        size = streaming.last_channel_cache_size

        def layer() -> LayerCache:
            return LayerCache(
                mx.zeros((batch, heads, size, d_head)),
                mx.zeros((batch, heads, size, d_head)),
                mx.zeros((batch, cfg.conv_context_size[0], cfg.d_model)),
                drop=streaming.cache_drop_size,
            )

        return cls(
            [layer() for _ in range(cfg.n_layers)],
            mx.zeros((batch,), dtype=mx.int32),
            tuple(streaming.att_context),
            streaming.style,
        )

    @property
    def size(self) -> int:
        """C: cached attention frames per layer (NeMo's `last_channel_cache_size`)."""
        return self.layers[0].keys.shape[2]

    @property
    def drop(self) -> int:
        return self.layers[0].drop

    def valid_frames(self, lengths: mx.array, time: int) -> mx.array:
        """(B, C + T) bool: which of the cached + new frames are real (keys to attend to)."""
        positions = mx.arange(self.size + time)[None, :]
        first = self.size - self.last_channel_len
        return (positions >= first[:, None]) & (positions < (lengths + self.size)[:, None])

    def advance(self, time: int) -> None:
        """Count a chunk of `time` encoder frames into the caches (after the layers ran)."""
        kept = time - self.drop
        self.last_channel_len = mx.minimum(self.last_channel_len + kept, self.size).astype(mx.int32)
        self.overdrawn = kept < 0
