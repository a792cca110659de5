"""Cache-aware streaming of NeMo's FastConformer, as `ConformerEncoder.cache_aware_stream_step`.

NeMo's streaming checkpoints (causal subsampling, `att_context_style: chunked_limited`,
causal convolutions, several `att_context_size` lookaheads) encode audio chunk by chunk,
carrying per layer the last C attention inputs (C = left context), the last inputs of each
depthwise convolution, and how many of the C are real. The encoder runs a chunk with that
state as its `cache=` argument (`StreamCache`, in `cache.py`): the layers are the offline
ones. What is streaming's own lives here: `streaming_config` reproduces
`setup_streaming_params` (chunk and shift sizes in feature frames, the pre-encode cache,
`drop_extra_pre_encoded`), `cache_aware_step` one call of `cache_aware_stream_step`, and
`CacheAwareStreamer` the chunking of NeMo's `CacheAwareStreamingAudioBuffer`, fed with
feature frames as they arrive.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import mlx.core as mx
import numpy as np

from .cache import StreamCache
from .speaker import SpeakerTargets

__all__ = [
    "CacheAwareStreamer",
    "Chunk",
    "StreamCache",
    "StreamingConfig",
    "cache_aware_step",
    "streaming_config",
]


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


def cache_aware_step(
    encoder,
    features: mx.array,
    lengths: mx.array,
    cache: StreamCache,
    streaming: StreamingConfig,
    keep_all_outputs: bool = False,
    drop_extra_pre_encoded: int | None = None,
    speakers: SpeakerTargets | None = None,
) -> tuple[mx.array, mx.array, StreamCache]:
    """One `cache_aware_stream_step`: features (B, T, F) of a chunk with its pre-encode cache
    (and a multitalker model's speaker activity for the chunk, `speakers`).

    Returns encoder output (B, T', D), its valid lengths and the cache, updated in place.
    """
    drop = (
        streaming.drop_extra_pre_encoded
        if drop_extra_pre_encoded is None
        else drop_extra_pre_encoded
    )
    if cache.overdrawn:
        raise ValueError(
            f"regular-style cache-aware streaming with context {list(streaming.att_context)}: "
            f"a chunk had fewer encoder frames than the {streaming.cache_drop_size} its caches "
            "drop (the lookahead, right context x layers), so no step can follow it (NeMo's "
            "streaming fails there too)"
        )
    x, lengths = encoder(features, lengths, cache=cache, drop_pre_encoded=drop, speakers=speakers)
    if streaming.valid_out_len > 0 and (not keep_all_outputs or streaming.style == "regular"):
        x = x[:, : streaming.valid_out_len]
        lengths = mx.minimum(lengths, streaming.valid_out_len)
    return x, lengths, cache


@dataclass(frozen=True)
class Chunk:
    """One step of a `CacheAwareStreamer`: what NeMo's buffer yields and its encoder gives.

    `features` (T, F) are the chunk's feature frames after its pre-encode cache, as
    `CacheAwareStreamingAudioBuffer` yields them; `drop` the pre-encoded frames its step drops
    (`drop_extra_pre_encoded`); `encoded` (T', D) the chunk's encoder frames.
    """

    step: int
    features: mx.array
    drop: int
    encoded: mx.array


@dataclass
class CacheAwareStreamer:
    """Feature frames in, encoder frames out, chunked as NeMo's `CacheAwareStreamingAudioBuffer`.

    `add(frames)` appends (T, F) feature frames and returns the encoder frames of every
    chunk that is complete; `finish()` runs what is left as NeMo does at the end of a
    buffer (the last chunk keeps all its outputs; a tail shorter than one subsampling step
    is dropped, as NeMo drops it). One stream (batch 1). `speakers(step)`, if given, is a
    multitalker model's speaker activity for chunk `step` (0, 1, ...); `active(step)`, if
    given, says whether chunk `step` runs at all: a skipped chunk leaves the cache as it was
    and gives no output (NeMo's cache gating of multitalker instances).
    """

    encoder: object
    streaming: StreamingConfig
    speakers: Callable[[int], SpeakerTargets | None] | None = None
    active: Callable[[int], bool] | None = None
    _buffer: list = field(default_factory=list)
    _frames: int = 0
    _index: int = 0
    _step: int = 0
    cache: StreamCache | None = None
    _done: bool = False

    def __post_init__(self) -> None:
        self.cache = StreamCache.initial(self.encoder, self.streaming)

    def add(self, frames: mx.array | np.ndarray) -> mx.array:
        return self._joined(self.add_chunks(frames))

    def finish(self) -> mx.array:
        return self._joined(self.finish_chunks())

    def add_chunks(self, frames: mx.array | np.ndarray) -> list[Chunk]:
        """`add`, one `Chunk` per step run (a caller that needs each step's features)."""
        frames = mx.array(frames, dtype=mx.float32)
        if frames.shape[0]:
            self._buffer.append(frames)
            self._frames += frames.shape[0]
        return self._run(final=False)

    def finish_chunks(self) -> list[Chunk]:
        chunks = self._run(final=True)
        self._done = True
        return chunks

    def _joined(self, chunks: list[Chunk]) -> mx.array:
        if not chunks:
            return mx.zeros((0, self.encoder.config.output_dim))
        outputs = [c.encoded for c in chunks]
        return mx.concatenate(outputs) if len(outputs) > 1 else outputs[0]

    def _features(self) -> mx.array:
        if len(self._buffer) > 1:
            self._buffer = [mx.concatenate(self._buffer)]
        return self._buffer[0]

    def _run(self, final: bool) -> list[Chunk]:
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
            if self.active is not None and not self.active(self._step):
                self._step += 1
                continue
            drop = 0 if first else cfg.drop_extra_pre_encoded
            out, lengths, self.cache = cache_aware_step(
                self.encoder,
                chunk_features,
                length,
                self.cache,
                cfg,
                keep_all_outputs=last,
                drop_extra_pre_encoded=drop,
                speakers=self.speakers(self._step) if self.speakers is not None else None,
            )
            out = out[0, : int(lengths[0])]
            mx.eval(out, self.cache.last_channel_len,
                    [(c.keys, c.values, c.conv) for c in self.cache.layers])  # fmt: skip
            outputs.append(Chunk(self._step, chunk_features[0], drop, out))
            self._step += 1
        return outputs
