"""NeMo's streaming Sortformer (`forward_streaming`), chunk by chunk, one stream.

Each chunk of features (with left/right context) is subsampled, put after the speaker cache
and the FIFO of earlier subsampled frames, and the whole sequence runs through the
FastConformer layers, the Transformer and the head; the chunk's own frames give its output,
then join the FIFO, whose oldest frames move into the speaker cache, compressed when full
(`speaker_cache.compress`). As NeMo's synchronous `streaming_update`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import mlx.core as mx
import numpy as np

from .config import StreamingConfig
from .model import Sortformer
from .speaker_cache import compress, silence_profile


@dataclass
class StreamingState:
    """NeMo's `StreamingSortformerState` for one stream (subsampled frames, host arrays)."""

    spkcache: np.ndarray
    fifo: np.ndarray
    mean_silence: np.ndarray
    silence_frames: int = 0
    spkcache_preds: np.ndarray | None = None  # None until the cache first overflows
    fifo_preds: np.ndarray | None = None
    chunks: int = 0  # chunks taken so far

    @classmethod
    def empty(cls, width: int) -> StreamingState:
        zeros = np.zeros((0, width), np.float32)
        return cls(zeros, zeros.copy(), np.zeros((width,), np.float32))


def feature_chunks(
    frames: int, config: StreamingConfig, subsampling: int
) -> Iterator[tuple[int, int, int, int]]:
    """(start, end, left, right) feature frames of each chunk (`streaming_feat_loader`)."""
    start = end = 0
    while end < frames:
        left = min(config.chunk_left_context * subsampling, start)
        end = min(start + config.chunk_len * subsampling, frames)
        right = min(config.chunk_right_context * subsampling, frames - end)
        yield start, end, left, right
        start = end


def update(
    state: StreamingState,
    chunk: np.ndarray,
    preds: np.ndarray,
    left: int,
    right: int,
    config: StreamingConfig,
) -> np.ndarray:
    """Move the chunk into the FIFO and the FIFO's oldest into the cache; the chunk's preds."""
    cached, queued = state.spkcache.shape[0], state.fifo.shape[0]
    length = chunk.shape[0] - left - right
    fifo_preds = preds[cached : cached + queued]
    chunk = chunk[left : left + length]
    chunk_preds = preds[cached + queued + left : cached + queued + left + length]
    state.fifo = np.concatenate([state.fifo, chunk])
    state.fifo_preds = np.concatenate([fifo_preds, chunk_preds])
    if queued + length > config.fifo_len:
        pop = max(config.spkcache_update_period, length - config.fifo_len + queued)
        pop = min(pop, queued + length)
        popped, popped_preds = state.fifo[:pop], state.fifo_preds[:pop]
        state.mean_silence, state.silence_frames = silence_profile(
            state.mean_silence, state.silence_frames, popped, popped_preds, config.sil_threshold
        )
        state.fifo, state.fifo_preds = state.fifo[pop:], state.fifo_preds[pop:]
        state.spkcache = np.concatenate([state.spkcache, popped])
        if state.spkcache_preds is not None:
            state.spkcache_preds = np.concatenate([state.spkcache_preds, popped_preds])
        if state.spkcache.shape[0] > config.spkcache_len:
            if state.spkcache_preds is None:
                state.spkcache_preds = np.concatenate([preds[:cached], popped_preds])
            state.spkcache, state.spkcache_preds = compress(
                state.spkcache, state.spkcache_preds, state.mean_silence, config
            )
    state.chunks += 1
    return chunk_preds


def step(
    model: Sortformer,
    state: StreamingState,
    features: mx.array,
    left: int,
    right: int,
    config: StreamingConfig,
    drop: int = 0,
) -> np.ndarray:
    """One chunk of features (1, T, F) with `left`/`right` context feature frames -> its
    (frames, speakers) probabilities (`forward_streaming_step`); `state` is updated.
    `drop`: subsampled frames dropped first (its `drop_extra_pre_encoded`, which a cache-aware
    ASR's chunks need: their first feature frames are a pre-encode cache)."""
    subsampling = model.config.encoder.subsampling_factor
    lengths = mx.array([features.shape[1]], dtype=mx.int32)
    chunk, chunk_lengths = model.encoder.pre_encode(features, lengths)
    if drop > 0:
        chunk, chunk_lengths = chunk[:, drop:], chunk_lengths - drop
    sequence = mx.concatenate(
        [mx.array(state.spkcache)[None], mx.array(state.fifo)[None], chunk], axis=1
    )
    total = state.spkcache.shape[0] + state.fifo.shape[0] + chunk_lengths
    preds = model.probabilities(*model.embeddings(sequence, total, pre_encoded=True))
    mx.eval(chunk, preds)
    return update(
        state,
        np.array(chunk[0]),
        np.array(preds[0]),
        round(left / subsampling),
        math.ceil(right / subsampling),
        config,
    )


def stream_probabilities(
    model: Sortformer, features: mx.array, config: StreamingConfig
) -> np.ndarray:
    """A whole utterance's features (1, T, F) streamed chunk by chunk -> (T', speakers)."""
    subsampling = model.config.encoder.subsampling_factor
    state = StreamingState.empty(model.config.encoder.d_model)
    outputs = [np.zeros((0, model.config.num_speakers), np.float32)]
    for start, end, left, right in feature_chunks(features.shape[1], config, subsampling):
        chunk = features[:, start - left : end + right]
        outputs.append(step(model, state, chunk, left, right, config))
    return np.concatenate(outputs)
